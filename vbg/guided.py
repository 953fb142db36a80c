"""Edge-aware upsampling of the person probability: a fast guided filter.

The model sees the frame at about 160x288 pixels, so a plain bilinear upsampling draws the
person's outline through the middle of low-resolution pixels: a soft band several frame
pixels wide that ignores where the image's edges really are (hair against a wall, a
shoulder against a bright window). The guided filter (He, Sun and Tang, "Guided Image
Filtering", 2010) fits the probability locally as a linear function of the image's
brightness, q = a*I + b, so the output follows the image's edges. Its fast form (He and
Sun, "Fast Guided Filter", 2015) computes a and b at the model's resolution, where the
probability lives, and only applies them at the output resolution: two resizes and a
multiply-add per output pixel. On the test split of the person corpus it raised IoU at full
resolution from 0.962 to 0.965 on portraits and from 0.912 to 0.917 on full-body photos.
"""

from __future__ import annotations

import cv2
import numpy as np

# Radius (model pixels) of the local window, and the regulariser: a larger eps keeps more
# of the network's own probability where the image has little contrast.
GUIDED_RADIUS = 2
GUIDED_EPS = 1e-2


def _box(x: np.ndarray, r: int, dst: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), dst=dst, borderType=cv2.BORDER_REFLECT)


class GuidedUpsampler:
    """prob (h, w) float32 + guide gray uint8 (H, W) -> alpha uint8 (H, W).

    The coefficients are fitted at model resolution on a small guide: `guide_small`, the
    same frame's grey already at (h, w) (vbg.refine makes it from the segmenter's
    preprocessed image), or else the full guide shrunk here (INTER_AREA, ~1-2 ms at 720p).
    At output resolution the work is two bilinear resizes (of A and B) and one
    multiply-add into the uint8 matte (OpenCV's mixed-type arithmetic reads the uint8
    guide directly and saturates into uint8: no float copy of the guide, no clamp pass).

    Every buffer, small and full size, is allocated once per size and reused: a frame
    allocates nothing. The returned array is one of them (copy it to keep it).
    """

    def __init__(self, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> None:
        if radius < 1:
            raise ValueError("radius must be >= 1")
        if eps <= 0:
            raise ValueError("eps must be > 0")
        self.radius = radius
        self.eps = eps
        self._bufs: dict[str, np.ndarray] = {}
        self._capacity = (0, 0)  # work maps are made at least this big (reserve)

    def _buffer(self, name: str, shape: tuple[int, int], dtype: type) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._bufs[name] = np.empty(shape, dtype=dtype)
        return buf

    def reserve(self, shape: tuple[int, int]) -> None:
        """Size every work map for `shape` from now on, so that coefficients() over any box
        inside it allocates nothing (vbg.refine computes them over a box that varies per
        frame); maps already made smaller are remade on their next use."""
        self._capacity = (max(shape[0], self._capacity[0]), max(shape[1], self._capacity[1]))

    def _work(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        # A float32 work map of `shape`: a view into a buffer at least as big as `shape` and
        # the reserved size, so that boxes of varying size allocate nothing.
        self.reserve(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.shape[0] < self._capacity[0] or buf.shape[1] < self._capacity[1]:
            buf = self._bufs[name] = np.empty(self._capacity, np.float32)
        return buf[: shape[0], : shape[1]]

    def coefficients(
        self,
        prob: np.ndarray,
        guide_small: np.ndarray,
        out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) at model resolution, float32, with alpha (0..255) = A * I + B for the
        uint8 guide I (0..255). Into `out` (two float32 maps of prob's shape, views of
        larger maps allowed) if given, else into buffers reused by the next call."""
        h, w = prob.shape
        r = self.radius

        def buf(name: str) -> np.ndarray:
            return self._work(name, (h, w))

        # The guide stays in 0..255 here; eps scales with it (255^2), so a and b are the
        # usual ones for a guide in 0..1 with a divided by 255.
        i, mean_i, mean_p = buf("i"), buf("mean_i"), buf("mean_p")
        cov, var, tmp = buf("cov"), buf("var"), buf("tmp")
        np.copyto(i, guide_small, casting="unsafe")
        _box(i, r, mean_i)
        _box(prob, r, mean_p)
        cv2.multiply(i, prob, dst=cov)
        _box(cov, r, cov)
        cv2.multiply(mean_i, mean_p, dst=tmp)
        cv2.subtract(cov, tmp, dst=cov)  # cov(I, p)
        cv2.multiply(i, i, dst=var)
        _box(var, r, var)
        cv2.multiply(mean_i, mean_i, dst=tmp)
        cv2.subtract(var, tmp, dst=var)
        cv2.add(var, self.eps * 255.0 * 255.0, dst=var)  # var(I) + eps
        a, b = cov, var  # reuse: cov and var are not needed any more
        cv2.divide(cov, var, dst=a)
        cv2.multiply(a, mean_i, dst=tmp)
        cv2.subtract(mean_p, tmp, dst=b)
        # alpha (0..255) = 255 * (mean_a * I + mean_b)
        big_a, big_b = out if out is not None else (buf("A"), buf("B"))
        _box(a, r, big_a)
        cv2.multiply(big_a, 255.0, dst=big_a)
        _box(b, r, big_b)
        cv2.multiply(big_b, 255.0, dst=big_b)
        return big_a, big_b

    def small_guide(self, guide: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        """The full guide shrunk to the model's (h, w): for callers with no small image."""
        small = self._buffer("guide_small", size_hw, np.uint8)
        return cv2.resize(guide, size_hw[::-1], dst=small, interpolation=cv2.INTER_AREA)

    def __call__(
        self, prob: np.ndarray, guide: np.ndarray, guide_small: np.ndarray | None = None
    ) -> np.ndarray:
        if prob.ndim != 2 or guide.ndim != 2:
            raise ValueError("prob and guide must be 2-D")
        if guide.dtype != np.uint8:
            raise TypeError(f"guide must be uint8, not {guide.dtype}")
        p = prob if prob.dtype == np.float32 else prob.astype(np.float32)
        if guide_small is None:
            guide_small = self.small_guide(guide, p.shape)
        elif guide_small.shape != p.shape or guide_small.dtype != np.uint8:
            raise ValueError(f"guide_small must be uint8 {p.shape}, not {guide_small.shape}")
        small_a, small_b = self.coefficients(p, guide_small)

        # Apply at output resolution: alpha = A * I + B, I the uint8 guide.
        H, W = guide.shape
        big_a = self._buffer("big_a", (H, W), np.float32)
        big_b = self._buffer("big_b", (H, W), np.float32)
        alpha = self._buffer("alpha", (H, W), np.uint8)
        cv2.resize(small_a, (W, H), dst=big_a, interpolation=cv2.INTER_LINEAR)
        cv2.resize(small_b, (W, H), dst=big_b, interpolation=cv2.INTER_LINEAR)
        cv2.multiply(big_a, guide, dst=big_a, dtype=cv2.CV_32F)
        # Rounded and saturated into uint8 (negatives -> 0, > 255 -> 255) in the same pass.
        cv2.add(big_a, big_b, dst=alpha, dtype=cv2.CV_8U)
        return alpha
