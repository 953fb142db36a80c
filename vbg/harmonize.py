"""Colour harmonisation: the person's overall tone and white balance toward the new
background's, so a person under a warm lamp does not look pasted onto a cold night city.

Cheap by design: the statistics are means at 1/16 resolution (the person's mean colour
under the matte, the background's mean colour once per background), and the correction is
one per-channel gain for the whole frame,

    gain_c = clip((mean_background_c / mean_person_c) ** strength, 1/max_gain, max_gain)

smoothed over frames so it never flickers. A global gain keeps every local contrast of
the face and cannot create an edge or a halo; strength 0.3 moves a third of the way in the
log domain, a hint of the scene's light rather than a recolouring. Off by default.
"""

from __future__ import annotations

import cv2
import numpy as np

SHRINK = 16


class Harmonizer:
    """frame BGR uint8 + alpha uint8 -> frame * per-channel gains (a reused buffer)."""

    def __init__(self, strength: float = 0.3, max_gain: float = 1.25, smooth: float = 0.1) -> None:
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"harmonisation strength must be in (0, 1], not {strength}")
        if max_gain < 1.0:
            raise ValueError(f"max_gain must be >= 1, not {max_gain}")
        if not 0.0 < smooth <= 1.0:
            raise ValueError(f"smooth must be in (0, 1], not {smooth}")
        self.strength, self.max_gain, self.smooth = strength, max_gain, smooth
        self._target: np.ndarray | None = None  # background mean BGR
        self.gains = np.ones(3, np.float64)  # current gains (B, G, R)
        self._out: np.ndarray | None = None
        self._lut = np.empty((1, 256, 3), np.uint8)
        self._fresh = True

    def set_background(self, background_bgr: np.ndarray) -> None:
        small = _shrink(background_bgr)
        self._target = small.reshape(-1, 3).mean(axis=0) + 1.0
        self.reset()

    def reset(self) -> None:
        self.gains = np.ones(3, np.float64)
        self._fresh = True

    def target_gains(self, frame_bgr: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray | None:
        """The gains this frame asks for (None: too little person to measure)."""
        if self._target is None:
            raise RuntimeError("Harmonizer.set_background was not called")
        small = _shrink(frame_bgr).reshape(-1, 3).astype(np.float64)
        a = _shrink(alpha_u8).reshape(-1).astype(np.float64)
        if a.sum() < 0.01 * 255 * a.size:  # under 1 % of the frame: keep the last gains
            return None
        person = (small * a[:, None]).sum(axis=0) / a.sum() + 1.0
        g = (self._target / person) ** self.strength
        return np.clip(g, 1.0 / self.max_gain, self.max_gain)

    def __call__(self, frame_bgr: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
        g = self.target_gains(frame_bgr, alpha_u8)
        if g is not None:
            w = 1.0 if self._fresh else self.smooth
            self.gains = (1.0 - w) * self.gains + w * g
            self._fresh = False
        if self._out is None or self._out.shape != frame_bgr.shape:
            self._out = np.empty_like(frame_bgr)
        # One pass: every pixel times the same gains, rounded and saturated, through a
        # three-channel lookup table (a table lookup is cheaper than a multiply per pixel).
        levels = np.arange(256, dtype=np.float64)[:, None] * self.gains[None, :]
        self._lut[0] = np.clip(np.round(levels), 0, 255)
        cv2.LUT(frame_bgr, self._lut, dst=self._out)
        return self._out


def _shrink(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(1, w // SHRINK), max(1, h // SHRINK))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
