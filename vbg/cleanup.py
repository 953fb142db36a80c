"""Matte clean-up after upsampling: bounds that stop ghosts, and speck/hole removal.

Ghosts. The guided filter fits alpha = a * I + b in every window; a window that holds the
person's outline *and* another strong edge of the old background (a picture frame, a
door) transfers part of the outline's alpha onto that edge: a translucent patch of the old
background with a hard, straight border, which a chroma key shows at once. `MatteBounds`
keeps the filter where the model is unsure: the matte is clamped between the upsampled
erosion and dilation of the model's probability (radius 1 model pixel), so it can move
the outline by a pixel or two of the model's grid to the image edge, and never paint alpha
where the model saw only background (or holes where it saw only person).

Specks and holes. `ComponentFilter` drops connected person regions (soft rim included)
whose sure part is smaller than a fraction of the frame and fills background holes inside the person smaller than another: sizes
relative to the frame, so they mean the same at every resolution (the morphology of
vbg.temporal is a fixed pixel radius). It runs at model resolution on the probability.
"""

from __future__ import annotations

import cv2
import numpy as np

from vbg import fused

SUPPORT = 0.1  # probability above which a pixel belongs to a region (ComponentFilter)


class MatteBounds:
    """prob (h, w) float32 + matte uint8 (H, W) -> the matte clamped in place to
    [up(erode(prob)), up(dilate(prob))] (0..255), then levelled: alpha <= black becomes 0,
    >= 255 - black becomes 255, linear in between (one lookup table). The model's
    probability is rarely exactly 0 on the background: without the levels, a chroma key
    shows alpha 1..30 over much of the background, pixels a keyer sees as off the key colour,
    and the soft tail of the upsampled probability is the band outside the cheek. black=32
    (a 1.33x steeper ramp, 0.5 stays 0.5) halved the background pixels with alpha > 0 on the
    test split (10.4 % -> 5.3 %, 3+ px from the person) and lowered dtSSD (8.27 -> 8.13 on
    the five DAVIS videos) without changing IoU (benchmarks/matte_quality.py).
    radius: model pixels."""

    def __init__(self, radius: int = 1, black: int = 32) -> None:
        if radius < 1:
            raise ValueError("radius must be >= 1")
        if not 0 <= black < 127:
            raise ValueError("black must be in 0..126")
        x = (np.arange(256, dtype=np.float32) - black) * (255.0 / (255 - 2 * black))
        self._lut = np.clip(np.round(x), 0, 255).astype(np.uint8)
        self._ends = fused.lut_ends(self._lut)
        self._k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
        self._bufs: dict[str, np.ndarray] = {}

    def _buf(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        b = self._bufs.get(name)
        if b is None or b.shape != shape:
            b = self._bufs[name] = np.empty(shape, np.uint8)
        return b

    @property
    def lut_ends(self) -> tuple[int, int]:
        """(t_bg, t_fg): the levels give 0 at or below t_bg and 255 at or above t_fg."""
        return self._ends

    @property
    def lut(self) -> np.ndarray:
        """The levels table (uint8[256]) applied after the clamp."""
        return self._lut

    def small_bounds(self, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi): erosion and dilation of the probability as uint8 0..255 at model
        resolution, before upsampling (reused buffers)."""
        h, w = prob.shape
        p8 = self._buf("p8", (h, w))
        lo, hi = self._buf("lo", (h, w)), self._buf("hi", (h, w))
        cv2.convertScaleAbs(prob, dst=p8, alpha=255.0)
        cv2.erode(p8, self._k, dst=lo, borderType=cv2.BORDER_REPLICATE)
        cv2.dilate(p8, self._k, dst=hi, borderType=cv2.BORDER_REPLICATE)
        return lo, hi

    def __call__(self, prob: np.ndarray, matte: np.ndarray) -> np.ndarray:
        H, W = matte.shape
        lo, hi = self.small_bounds(prob)
        big = self._buf("big", (H, W))
        cv2.resize(hi, (W, H), dst=big, interpolation=cv2.INTER_LINEAR)
        cv2.min(matte, big, dst=matte)
        cv2.resize(lo, (W, H), dst=big, interpolation=cv2.INTER_LINEAR)
        cv2.max(matte, big, dst=matte)
        cv2.LUT(matte, self._lut, dst=matte)
        return matte


class ComponentFilter:
    """prob (h, w) float32 -> prob with small person specks removed (set to 0) and small
    holes inside the person filled (set to 1), as a copy in a reused buffer.

    min_area / max_hole: fractions of the frame's area (0 = off).
    """

    def __init__(self, min_area: float = 0.002, max_hole: float = 0.002) -> None:
        if not (0.0 <= min_area < 1.0 and 0.0 <= max_hole < 1.0):
            raise ValueError("min_area and max_hole are fractions of the frame in [0, 1)")
        self.min_area, self.max_hole = min_area, max_hole
        self._bufs: dict[str, np.ndarray] = {}

    def _buf(self, name: str, shape: tuple[int, int], dtype: type) -> np.ndarray:
        b = self._bufs.get(name)
        if b is None or b.shape != shape:
            b = self._bufs[name] = np.empty(shape, dtype)
        return b

    def _counts(self, n: int) -> np.ndarray:
        # Per-region counters for the compiled passes; grown (rarely) to the most regions seen.
        c = self._bufs.get("counts")
        if c is None or c.size < n:
            c = self._bufs["counts"] = np.empty(max(n, 256), np.int64)
        return c

    def __call__(self, prob: np.ndarray) -> np.ndarray:
        """A cleaned copy of prob in a buffer reused by the next call (prob is not changed).
        OpenCV labels the regions; the per-region counts and decisions are compiled passes
        (vbg.fused) instead of a Python loop over regions with OpenCV's statistics."""
        n_px = prob.size
        out = self._buf("out", prob.shape, np.float32)
        np.copyto(out, prob)
        mask = self._buf("mask", prob.shape, np.uint8)
        labels = self._buf("labels", prob.shape, np.int32)
        if self.min_area > 0:
            # Regions of the soft support (prob >= 0.1) whose sure part (>= 0.5) is smaller
            # than the limit go, soft rim and all: a faint blob (a pillow at 0.3) as well as
            # a small sure speck; a person's soft hair stays with the person it touches.
            cv2.compare(out, SUPPORT, cv2.CMP_GE, dst=mask)
            n = cv2.connectedComponents(mask, labels=labels, connectivity=8)[0]
            fused.drop_specks(out, labels, n, 0.5, self.min_area * n_px, self._counts(n))
        if self.max_hole > 0:
            # Background regions: those touching the border are the real background.
            cv2.compare(out, 0.5, cv2.CMP_LT, dst=mask)
            n = cv2.connectedComponents(mask, labels=labels, connectivity=4)[0]
            fused.fill_holes(out, labels, n, self.max_hole * n_px, self._counts(n))
        return out
