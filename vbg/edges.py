"""Edge colour decontamination for offline compositing.

Where the matte is soft (hair, the outline's last few pixels), a pixel is partly person and
partly the old background. Blending it as it is carries the old background's colour into
the new scene: a light fringe around a person who stood before a white door. Here each such
pixel's colour is replaced by the mean colour of the sure-foreground pixels around it, so
the soft edge mixes the person's own colour with the new background. It costs a few ms per
720p frame (two box filters at full resolution), so `vbg process` uses it and `vbg run`
does not.
"""

from __future__ import annotations

import cv2
import numpy as np


class EdgeColors:
    """frame BGR uint8 + alpha uint8 -> frame with decontaminated edge colours.

    sure: alpha at and above which a pixel counts as certainly person.
    radius: half-size of the window that sure-foreground colours are averaged over.
    The returned array is a buffer reused by the next call (copy it to keep it).
    """

    def __init__(self, radius: int = 8, sure: int = 230) -> None:
        if radius < 1:
            raise ValueError("radius must be >= 1")
        if not 0 < sure <= 255:
            raise ValueError("sure must be in 1..255")
        self.radius = radius
        self.sure = sure
        self._bufs: dict[str, np.ndarray] = {}

    def _buf(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        b = self._bufs.get(name)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self._bufs[name] = np.empty(shape, dtype=dtype)
        return b

    def __call__(self, frame_bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        if frame_bgr.dtype != np.uint8 or alpha.dtype != np.uint8:
            raise TypeError("frame and alpha must be uint8")
        H, W = alpha.shape
        if frame_bgr.shape != (H, W, 3):
            raise ValueError(f"frame {frame_bgr.shape} does not match alpha {alpha.shape}")
        k = (2 * self.radius + 1, 2 * self.radius + 1)
        sure = self._buf("sure", (H, W), np.float32)
        np.greater_equal(alpha, self.sure, out=sure, casting="unsafe")
        weighted = self._buf("weighted", (H, W, 3), np.float32)
        np.multiply(frame_bgr, sure[..., None], out=weighted)
        # Sums over the window (normalize=False): mean colour = sum(colour) / count.
        cv2.boxFilter(weighted, -1, k, dst=weighted, normalize=False)
        cv2.boxFilter(sure, -1, k, dst=sure, normalize=False)
        # The soft edge (0 < alpha < sure) that has sure foreground within the window: a
        # thin band, so its colours are computed for its pixels only.
        band = self._buf("band", (H, W), np.uint8)
        near = self._buf("near", (H, W), np.uint8)
        cv2.inRange(alpha, 1, self.sure - 1, dst=band)
        cv2.compare(sure, 0.5, cv2.CMP_GT, dst=near)
        cv2.bitwise_and(band, near, dst=band)
        out = self._buf("out", (H, W, 3), np.uint8)
        np.copyto(out, frame_bgr)
        ys, xs = np.nonzero(band)
        if ys.size:
            mean = weighted[ys, xs] / sure[ys, xs][:, None]
            out[ys, xs] = np.clip(mean + 0.5, 0, 255).astype(np.uint8)
        return out
