"""Background blur without a halo.

Blurring the whole frame and compositing the person over it smears the person's own
colours into the blurred background: a soft ghost of skin and hair around the outline, as
wide as the blur. Here only background pixels are blurred: a normalised convolution,

    blurred = G * (frame . w) / G * w        w = background weight (0 on the person)

so every output pixel is an average of background pixels only, however close to the person
it lies. w = saturate(1 - 2 * alpha) is 0 wherever the matte says person with alpha >= 0.5,
and the soft edge below 0.5 still counts partly, so the outline stays smooth at every
strength. Like the plain blur it works at 1/f resolution (f a power of two, from the
kernel size): the premultiplication is one uint8 pass at full size, everything else small.
"""

from __future__ import annotations

import cv2
import numpy as np

BLUR_MAX_DOWNSCALE = 8


class HaloFreeBlur:
    """frame BGR uint8 (H, W, 3) + alpha uint8 (H, W) -> blurred background uint8 (H, W, 3).

    ksize: the Gaussian kernel at full resolution (the `blur:K` strength).
    Buffers are made once per frame size; `__call__` writes into `out` when given,
    otherwise into a buffer reused by the next call.
    """

    def __init__(self, ksize: int) -> None:
        if ksize < 1:
            raise ValueError(f"blur size must be >= 1, not {ksize}")
        self.ksize = int(ksize)
        self._hw: tuple[int, int] | None = None

    def _allocate(self, h: int, w: int) -> None:
        k = self.ksize
        f = max(1, min(BLUR_MAX_DOWNSCALE, k // 8, h // 8 or 1, w // 8 or 1))
        f = 1 << (f.bit_length() - 1)
        self._hw = (h, w)
        self._small_wh = (max(1, w // f), max(1, h // f))  # cv2 order
        ks = max(1, k // f) | 1
        self._k = (ks, ks)
        sh, sw = self._small_wh[1], self._small_wh[0]
        self._weight = np.empty((h, w), np.uint8)
        self._weight3 = np.empty((h, w, 3), np.uint8)
        self._premul = np.empty((h, w, 3), np.uint8)
        self._num = np.empty((sh, sw, 3), np.float32)
        self._den = np.empty((sh, sw), np.float32)
        self._den3 = np.empty((sh, sw, 3), np.float32)
        self._num_u8 = np.empty((sh, sw, 3), np.uint8)
        self._den_u8 = np.empty((sh, sw), np.uint8)
        self._small_out = np.empty((sh, sw, 3), np.uint8)
        self._out = np.empty((h, w, 3), np.uint8)

    def __call__(
        self, frame_bgr: np.ndarray, alpha_u8: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        h, w = alpha_u8.shape
        if frame_bgr.shape != (h, w, 3) or frame_bgr.dtype != np.uint8:
            raise ValueError(f"frame {frame_bgr.shape} does not match alpha {alpha_u8.shape}")
        if self._hw != (h, w):
            self._allocate(h, w)
        out = self._out if out is None else out
        # Background weight 0..255: 255 - 2 * alpha, saturated (0 from alpha 128 up).
        cv2.addWeighted(alpha_u8, -2.0, alpha_u8, 0.0, 255.0, dst=self._weight)
        cv2.cvtColor(self._weight, cv2.COLOR_GRAY2BGR, dst=self._weight3)
        cv2.multiply(frame_bgr, self._weight3, dst=self._premul, scale=1.0 / 255.0)
        if self._small_wh == (w, h):
            num_src, den_src = self._premul, self._weight
        else:
            num_src = cv2.resize(
                self._premul, self._small_wh, dst=self._num_u8, interpolation=cv2.INTER_AREA
            )
            den_src = cv2.resize(
                self._weight, self._small_wh, dst=self._den_u8, interpolation=cv2.INTER_AREA
            )
        np.copyto(self._num, num_src, casting="unsafe")
        np.copyto(self._den, den_src, casting="unsafe")
        cv2.GaussianBlur(self._num, self._k, 0, dst=self._num)
        cv2.GaussianBlur(self._den, self._k, 0, dst=self._den)
        # Deep inside a large person no background is within reach (den ~ 0); the result
        # there is covered by the person anyway, so only a division by zero is avoided.
        cv2.max(self._den, 0.25, dst=self._den)
        cv2.cvtColor(self._den, cv2.COLOR_GRAY2BGR, dst=self._den3)
        cv2.divide(self._num, self._den3, dst=self._num, scale=255.0)
        target = out if self._small_wh == (w, h) else self._small_out
        self._num += 0.5  # round, not truncate, on the cast below
        np.clip(self._num, 0.0, 255.0, out=self._num)
        np.copyto(target, self._num, casting="unsafe")
        if target is not out:
            cv2.resize(self._small_out, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
        return out
