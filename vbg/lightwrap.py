"""Light wrap: a little of the new background's light on the person's edge.

A person cut out and laid over a bright scene looks pasted on: the outline is as sharp
and as dark as it was in front of the old wall. Compositors (and Google Meet) wrap some
of the new background's light around the edge: inside the outline, within a few pixels,
the output is blended toward a blurred copy of the background, most at the outline and
fading to nothing inward. The weight is

    w = strength * alpha * blur(1 - alpha)

so it is 0 on the background (alpha 0), 0 deep inside the person (no background within
the blur's reach) and largest just inside the edge. blur(1 - alpha) is computed at 1/4
resolution; the blurred background is made once per background (`set_background`), so a
frame costs a small blur, an upsampling and one blend, both over the band's bounding box
only, the blend in uint8 like the main one (vbg.compose: two scaled multiplies and a
saturating add, within a grey level of the exact float blend). At 1280x720 on 2 cores
that is about 1 ms, where the float blend over the box cost about 2.9 ms.
"""

from __future__ import annotations

import cv2
import numpy as np

from vbg import fused

SHRINK = 4


class LightWrap:
    """Blends the blurred background into the person's inner edge band, in place.

    strength: the weight at the outline, 0..1. radius_frac: the band's reach as a fraction
    of the frame's smaller side (0.02: ~14 px at 720p).
    """

    def __init__(self, strength: float = 0.3, radius_frac: float = 0.02) -> None:
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"light wrap strength must be in (0, 1], not {strength}")
        if not 0.0 < radius_frac < 0.5:
            raise ValueError(f"light wrap radius must be in (0, 0.5), not {radius_frac}")
        self.strength = strength
        self.radius_frac = radius_frac
        # min_reach: in the float32 arithmetic of vbg.fused.composite's weight.
        k, t = np.float32(strength / 255.0), 1
        while int(np.float32(t * 255) * k + np.float32(0.5)) < 1:
            t += 1
        self._min_reach = t
        self._hw: tuple[int, int] | None = None
        self._bg_blur: np.ndarray | None = None

    def _allocate(self, h: int, w: int) -> None:
        self._hw = (h, w)
        self._small_wh = (max(1, w // SHRINK), max(1, h // SHRINK))
        r = max(1, round(self.radius_frac * min(h, w) / SHRINK))
        self._k = (2 * r + 1, 2 * r + 1)
        sw, sh = self._small_wh
        self._taps = (*fused.linear_taps(h, sh), *fused.linear_taps(w, sw))
        self._small = np.empty(self._small_wh[::-1], np.uint8)
        self._small_alpha = np.empty(self._small_wh[::-1], np.uint8)
        self._w_u8 = np.empty((h, w), np.uint8)
        self._w3 = np.empty((h, w, 3), np.uint8)  # the weight on every channel
        self._inv3 = np.empty((h, w, 3), np.uint8)  # 255 - weight
        self._light = np.empty((h, w, 3), np.uint8)  # blurred background * weight

    def set_background(self, background_bgr: np.ndarray) -> None:
        """The (fitted, full-size) new background; blurred once here, not per frame."""
        h, w = background_bgr.shape[:2]
        k = max(3, round(self.radius_frac * min(h, w) * 2)) | 1
        self._bg_blur = cv2.GaussianBlur(background_bgr, (k, k), 0)

    def _small_maps(self, alpha_u8: np.ndarray) -> None:
        """blur(255 - alpha) at 1/SHRINK resolution into self._small."""
        h, w = alpha_u8.shape
        if self._hw != (h, w):
            self._allocate(h, w)
        # Bilinear, not area: at this exact 4x step it averages each block's central 2x2
        # (a quarter of the reads of INTER_AREA), and the Gaussian that follows smooths away
        # the difference. Compiled (vbg.fused): it reads only those pixels, ~0.05 against
        # cv2.resize's ~0.2 ms on a cold 720p matte, and writes 255 - alpha alongside.
        fused.shrink_linear(alpha_u8, *self._taps, self._small_alpha, self._small)
        cv2.GaussianBlur(self._small, self._k, 0, dst=self._small)

    def wrap_map(self, alpha_u8: np.ndarray) -> np.ndarray:
        """blur(255 - alpha) at 1/SHRINK resolution (uint8, a reused buffer): the weight is
        strength * alpha / 255 * its bilinear upsampling (vbg.fused computes that)."""
        self._small_maps(alpha_u8)
        return self._small

    @property
    def background_blur(self) -> np.ndarray:
        """The blurred background the edge is blended toward (set_background)."""
        if self._bg_blur is None:
            raise RuntimeError("LightWrap.set_background was not called")
        return self._bg_blur

    @property
    def min_reach(self) -> int:
        """The least upsampled wrap value that can give a weight of 1 (at alpha 255)."""
        return self._min_reach

    def _weight_in(self, alpha_u8: np.ndarray, roi: tuple[slice, slice]) -> np.ndarray:
        # w = strength * alpha/255 * blur(255 - alpha): exactly 0 where alpha is 0.
        h, w = alpha_u8.shape
        cv2.resize(self._small, (w, h), dst=self._w_u8, interpolation=cv2.INTER_LINEAR)
        wt = self._w_u8[roi]
        cv2.multiply(wt, alpha_u8[roi], dst=wt, scale=self.strength / 255.0)
        return wt

    def weight(self, alpha_u8: np.ndarray) -> np.ndarray:
        """The per-pixel blend weight toward the background, uint8 0..255 (a reused buffer)."""
        self._small_maps(alpha_u8)
        self._weight_in(alpha_u8, np.s_[:, :])
        return self._w_u8

    def __call__(self, out_bgr: np.ndarray, alpha_u8: np.ndarray) -> np.ndarray:
        """out_bgr: the composited frame, changed in place (and returned)."""
        if self._bg_blur is None:
            raise RuntimeError("LightWrap.set_background was not called")
        if self._bg_blur.shape != out_bgr.shape:
            raise ValueError(f"background {self._bg_blur.shape} does not match {out_bgr.shape}")
        self._small_maps(alpha_u8)
        roi = self._band_box()
        if roi is None:
            return out_bgr
        # Over the band's bounding box only: out = out * (1 - w) + blurred bg * w, uint8.
        wt = self._weight_in(alpha_u8, roi)
        w3, inv3, light, o = self._w3[roi], self._inv3[roi], self._light[roi], out_bgr[roi]
        cv2.cvtColor(wt, cv2.COLOR_GRAY2BGR, dst=w3)
        cv2.bitwise_not(w3, dst=inv3)
        cv2.multiply(self._bg_blur[roi], w3, dst=light, scale=1.0 / 255.0)
        cv2.multiply(o, inv3, dst=o, scale=1.0 / 255.0)
        cv2.add(o, light, dst=o)
        return out_bgr

    def _band_box(self) -> tuple[slice, slice] | None:
        # Where the weight can be > 0: the person (alpha > 0) within the blur's reach of
        # the background, read off the small maps, plus a margin for the upsampling.
        band = (self._small > 0) & (self._small_alpha > 0)
        rows, cols = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
        if rows.size == 0:
            return None
        h, w = self._hw
        m = SHRINK + 1
        y0, y1 = max(0, rows[0] * SHRINK - m), min(h, (rows[-1] + 1) * SHRINK + m)
        x0, x1 = max(0, cols[0] * SHRINK - m), min(w, (cols[-1] + 1) * SHRINK + m)
        return slice(y0, y1), slice(x0, x1)
