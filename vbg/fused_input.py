"""The model's input from a frame in compiled passes, bit-identical to the OpenCV steps.

`vbg.segmenter` shrinks a frame for the model as exact 2x halvings (cv2 INTER_AREA, which
rounds each 2x2 average: (a + b + c + d + 2) >> 2), then one bilinear step below 2x
(cv2 INTER_LINEAR, 11-bit fixed point), then splits the planes and normalises them into
the NCHW float tensor: five or six OpenCV calls, the first reading the whole frame. In the
running pipeline those calls came to 0.7-1.0 ms at 720p on 2 cores (0.45 ms in a loop on
their own: each call wakes OpenCV's thread pool again). Here, two passes at 720p (0.46 ms
in the pipeline):

- `quarter_rows` does two halvings in one read of the frame (the 4x4 block's four 2x2
  averages, each rounded as OpenCV rounds, then their rounded average) and `halve_rows`
  one, rows split over two threads (numba's OpenMP pool, as vbg.fused);
- `linear_normalize` does the bilinear step with OpenCV's own fixed-point arithmetic
  (weights (1 - f) * 2048 rounded; each source row filtered horizontally once, then
  rows blended as (b0 * (s0 >> 4) >> 16) + (b1 * (s1 >> 4) >> 16), + 2 >> 2, as its SIMD
  path computes them) and writes both the small BGR image (the guided filter's guide) and
  the normalised tensor in the card's colour order.

The small image equals the OpenCV steps' to the bit (tests/vbg/test_fused_input.py), so
the model sees exactly what train/ evaluated. Frames the plan does not cover (enlarging,
an odd side that stops the halvings early, non-contiguous memory) keep the OpenCV steps.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit, prange

from vbg.resize import final_interpolation, halvings

ONE = np.int32(2048)  # OpenCV's INTER_RESIZE_COEF_SCALE: bilinear weights in 11-bit fixed point


def fixed_taps(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps along one axis in its fixed point: for each destination
    index the two source indices and the first one's weight out of ONE (the position is
    computed in float32 as cv2.resize does, then clamped to the edge)."""
    scale = n_src / n_dst
    i0 = np.empty(n_dst, np.int32)
    i1 = np.empty(n_dst, np.int32)
    w0 = np.empty(n_dst, np.int32)
    for d in range(n_dst):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = int(np.floor(f))
        f = np.float32(f - np.float32(s))
        if s < 0:
            f, s = np.float32(0.0), 0
        if s >= n_src - 1:
            f, s = np.float32(0.0), n_src - 1
        i0[d], i1[d] = s, min(s + 1, n_src - 1)
        w0[d] = round(float((np.float32(1.0) - f) * np.float32(ONE)))
    return i0, i1, w0


def area_taps(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-average taps along one axis for any shrink: for each destination index the first
    of its source indices and their coverage weights in fixed point (each row sums to
    ONE): the share of the destination cell [d, d + 1) * n_src / n_dst that each source
    cell covers. Rows have ceil(n_src / n_dst) + 1 weights (at least 3), trailing zeros
    where fewer cells are covered."""
    scale = n_src / n_dst
    if scale < 1.0:
        raise ValueError(f"area taps only shrink, not {n_src} -> {n_dst}")
    # At least 3 (padded with zeros): the kernels' unrolled path takes every factor below 2.
    k = min(n_src, max(3, int(np.ceil(scale)) + 1))
    d = np.arange(n_dst, dtype=np.float64)
    lo, hi = d * scale, (d + 1) * scale
    first = np.minimum(np.minimum(np.floor(lo), n_src - 1), n_src - k).astype(np.int32)
    cells = first[:, None] + np.arange(k)[None, :]  # (n_dst, k) source indices
    cover = np.minimum(hi[:, None], cells + 1.0) - np.maximum(lo[:, None], cells)
    weights = np.rint(np.clip(cover, 0.0, None) / scale * int(ONE)).astype(np.int32)
    # Exactly ONE in all: the rounding remainder onto each row's largest weight.
    rows = np.arange(n_dst)
    weights[rows, weights.argmax(axis=1)] += ONE - weights.sum(axis=1)
    return first, weights


@njit(cache=True, nogil=True)
def _tensor_row(d, tensor, i, rgb, scale, shift):
    # Row i of the NCHW tensor from the small image's row d (BGR bytes): the card's
    # channel order, * scale - shift.
    c0, c2 = (2, 0) if rgb else (0, 2)  # the byte of model channels 0 and 2
    o0, o1, o2 = tensor[0, 0, i], tensor[0, 1, i], tensor[0, 2, i]
    for j in range(o0.shape[0]):
        o0[j] = np.float32(d[3 * j + c0]) * scale[0] - shift[0]
        o1[j] = np.float32(d[3 * j + 1]) * scale[1] - shift[1]
        o2[j] = np.float32(d[3 * j + c2]) * scale[2] - shift[2]


@njit(cache=True, nogil=True)
def _area_filter_rows(src, rows, xi, xw, first, step):
    # The horizontal pass of rows first, first + step, ...: each output pixel the weighted
    # sum (int32, scaled by ONE) of the source pixels its cell covers.
    w, k = xw.shape
    for i in range(first, rows.shape[0], step):
        s, r = src[i], rows[i]
        if k == 3:  # every factor below 2 (after halvings): unrolled, twice as fast
            for j in range(w):
                p = 3 * xi[j]
                a, b, c = xw[j, 0], xw[j, 1], xw[j, 2]
                for ch in range(3):
                    r[3 * j + ch] = (
                        np.int32(s[p + ch]) * a
                        + np.int32(s[p + 3 + ch]) * b
                        + np.int32(s[p + 6 + ch]) * c
                    )
            continue
        for j in range(w):
            p = 3 * xi[j]
            v0 = v1 = v2 = np.int32(0)
            for t in range(k):
                a = xw[j, t]
                v0 += np.int32(s[p + 3 * t]) * a
                v1 += np.int32(s[p + 3 * t + 1]) * a
                v2 += np.int32(s[p + 3 * t + 2]) * a
            r[3 * j], r[3 * j + 1], r[3 * j + 2] = v0, v1, v2


@njit(cache=True, nogil=True)
def _area_blend_rows(rows, yi, yw, small, tensor, rgb, scale, shift, first, step):
    # The vertical pass of output rows first, first + step, ..., then their tensor rows.
    # 255 * ONE * ONE fits an int32; + half, >> 22 rounds.
    h, w = small.shape[0], small.shape[1]
    k = yw.shape[1]
    flat = small.reshape(h, 3 * w)
    half = np.int32(1 << 21)
    acc = np.empty(3 * w, np.int32)
    for i in range(first, h, step):
        d = flat[i]
        if k == 3:
            r0, r1, r2 = rows[yi[i]], rows[yi[i] + 1], rows[yi[i] + 2]
            a, b, c = yw[i, 0], yw[i, 1], yw[i, 2]
            for q in range(3 * w):
                d[q] = (r0[q] * a + r1[q] * b + r2[q] * c + half) >> 22
        else:
            acc[:] = half
            for t in range(k):
                a, r = yw[i, t], rows[yi[i] + t]
                for q in range(3 * w):
                    acc[q] += r[q] * a
            for q in range(3 * w):
                d[q] = acc[q] >> 22
        _tensor_row(d, tensor, i, rgb, scale, shift)


@njit(cache=True, nogil=True, parallel=True)
def area_normalize(src, rows, yi, yw, xi, xw, small, tensor, rgb, scale, shift):
    """As linear_normalize, with a box average (area_taps) for the step after the
    halvings: at the factors near 2 that vbg.roi's crops often leave, bilinear weighs
    the source pixels unevenly (a sharper, aliased picture, which the network reads
    worse: IoU -0.005 on the corpus's DAVIS clips). One read of the whole factor instead
    of halvings first costs three times as much (numba does not vectorise the taps).
    rows: (mh, w * 3) int32 scratch."""
    for t in prange(2):
        _area_filter_rows(src, rows, xi, xw, t, 2)
    for t in prange(2):
        _area_blend_rows(rows, yi, yw, small, tensor, rgb, scale, shift, t, 2)


@njit(cache=True, nogil=True, parallel=True)
def halve_rows(src, dst):
    """dst = cv2.resize(src, half size, INTER_AREA) for (H, W*3) uint8 rows of BGR."""
    h, wq = dst.shape[0], dst.shape[1] // 3
    for t in prange(2):
        for i in range(t, h, 2):
            a0, a1, d = src[2 * i], src[2 * i + 1], dst[i]
            for j in range(wq):
                for c in range(3):
                    k = 6 * j + c
                    d[3 * j + c] = (np.int32(a0[k]) + a0[k + 3] + a1[k] + a1[k + 3] + 2) >> 2


@njit(cache=True, nogil=True, parallel=True)
def quarter_rows(src, dst):
    """Two halvings at once: each 4x4 block's four rounded 2x2 averages, then theirs."""
    h, wq = dst.shape[0], dst.shape[1] // 3
    for t in prange(2):
        for i in range(t, h, 2):
            a0, a1, a2, a3 = src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]
            d = dst[i]
            for j in range(wq):
                for c in range(3):
                    k = 12 * j + c
                    p = (np.int32(a0[k]) + a0[k + 3] + a1[k] + a1[k + 3] + 2) >> 2
                    q = (np.int32(a0[k + 6]) + a0[k + 9] + a1[k + 6] + a1[k + 9] + 2) >> 2
                    r = (np.int32(a2[k]) + a2[k + 3] + a3[k] + a3[k + 3] + 2) >> 2
                    s = (np.int32(a2[k + 6]) + a2[k + 9] + a3[k + 6] + a3[k + 9] + 2) >> 2
                    d[3 * j + c] = (p + q + r + s + 2) >> 2


@njit(cache=True, nogil=True)
def _filter_rows(src, rows, x0, x1, ax, first, step):
    # The horizontal pass of rows first, first + step, ...: int32 sums scaled by ONE.
    w = x0.shape[0]
    for i in range(first, rows.shape[0], step):
        s, r = src[i], rows[i]
        for j in range(w):
            a = ax[j]
            b = ONE - a
            p, q = 3 * x0[j], 3 * x1[j]
            r[3 * j] = np.int32(s[p]) * a + np.int32(s[q]) * b
            r[3 * j + 1] = np.int32(s[p + 1]) * a + np.int32(s[q + 1]) * b
            r[3 * j + 2] = np.int32(s[p + 2]) * a + np.int32(s[q + 2]) * b


@njit(cache=True, nogil=True)
def _blend_rows(rows, y0, y1, by, small, tensor, rgb, scale, shift, first, step):
    # The vertical pass of output rows first, first + step, ..., then their tensor rows.
    h, w = small.shape[0], small.shape[1]
    flat = small.reshape(h, 3 * w)
    two = np.int32(2)
    for i in range(first, h, step):
        b0 = by[i]
        b1 = ONE - b0
        r0, r1, d = rows[y0[i]], rows[y1[i]], flat[i]
        for q in range(3 * w):
            v = (((b0 * (r0[q] >> 4)) >> 16) + ((b1 * (r1[q] >> 4)) >> 16) + two) >> 2
            d[q] = min(max(v, np.int32(0)), np.int32(255))
        _tensor_row(d, tensor, i, rgb, scale, shift)


@njit(cache=True, nogil=True, parallel=True)
def linear_normalize(src, rows, y0, y1, by, x0, x1, ax, small, tensor, rgb, scale, shift):
    """small = cv2.resize(src, INTER_LINEAR) to small's size and tensor[0, c] = small's
    channel c in the card's order (rgb: R, G, B; else B, G, R) * scale[c] - shift[c].

    src: (mh, mw * 3) uint8 rows; rows: (mh, w * 3) int32 scratch for the horizontal pass;
    y0, y1, by and x0, x1, ax: fixed_taps along each axis. As in OpenCV, each source row is
    filtered horizontally once, then pairs of rows are blended. (The loops live in plain
    functions called per thread: inside a prange body they compiled to slower code.)
    """
    for t in prange(2):
        _filter_rows(src, rows, x0, x1, ax, t, 2)
    for t in prange(2):
        _blend_rows(rows, y0, y1, by, small, tensor, rgb, scale, shift, t, 2)


class InputPlan:
    """Buffers and taps for one (frame size, model size), made once; None from `make` when
    the compiled passes do not cover the shrink (the caller keeps the OpenCV steps)."""

    def __init__(
        self,
        frame_hw: tuple[int, int],
        model_hw: tuple[int, int],
        rgb: bool,
        scale: tuple[float, ...],
        shift: tuple[float, ...],
        area: bool = False,
    ) -> None:
        """area: after the halvings, a box average (area_normalize) instead of OpenCV's
        bilinear step: vbg.roi's crops."""
        self.frame_hw, self.model_hw = tuple(frame_hw), tuple(model_hw)
        n = halvings(self.frame_hw, self.model_hw)
        hw = self.frame_hw
        # Two halvings per read of the frame where possible; an odd count ends with one.
        self._steps: list[tuple[object, np.ndarray]] = []
        while n > 0:
            k = 2 if n >= 2 else 1
            hw = (hw[0] >> k, hw[1] >> k)
            self._steps.append(
                (quarter_rows if k == 2 else halve_rows, np.empty((hw[0], hw[1] * 3), np.uint8))
            )
            n -= k
        self.mid_hw = hw
        (mh, mw), (h, w) = hw, self.model_hw
        self.area = bool(area)
        if self.area:
            self._rows = np.empty((mh, w * 3), np.int32)
            self.taps = (*area_taps(mh, h), *area_taps(mw, w))
        else:
            self._rows = np.empty((mh, w * 3), np.int32)
            self.taps = (*fixed_taps(mh, h), *fixed_taps(mw, w))
        self.rgb = bool(rgb)
        self.scale = np.asarray(scale, np.float32)
        self.shift = np.asarray(shift, np.float32)

    @staticmethod
    def covers(frame_hw: tuple[int, int], model_hw: tuple[int, int], area: bool = False) -> bool:
        """Shrinking on both axes, with the step after the halvings bilinear (below 2x); an
        area plan, any shrink (its taps cover any factor)."""
        (fh, fw), (h, w) = frame_hw, model_hw
        if h > fh or w > fw:
            return False
        if area:
            return True
        n = halvings((fh, fw), (h, w))
        mid = (fh >> n, fw >> n)
        return mid == (h, w) or final_interpolation(mid, (h, w)) == cv2.INTER_LINEAR

    def fits(self, frame: np.ndarray) -> bool:
        return (
            frame.shape[:2] == self.frame_hw
            and frame.dtype == np.uint8
            and frame.flags.c_contiguous
        )

    def __call__(self, frame: np.ndarray, small: np.ndarray, tensor: np.ndarray) -> None:
        """frame (H, W, 3) BGR uint8 -> small (h, w, 3) uint8 and tensor (1, 3, h, w)."""
        self._run(frame.reshape(frame.shape[0], -1), small, tensor)

    def crop(
        self, frame: np.ndarray, top: int, left: int, small: np.ndarray, tensor: np.ndarray
    ) -> None:
        """As __call__ for the part of a larger frame (C-contiguous) at (top, left) whose
        size is this plan's frame size, read in place (vbg.roi's person crop)."""
        h, w = self.frame_hw
        rows = frame.reshape(frame.shape[0], -1)[top : top + h, 3 * left : 3 * (left + w)]
        self._run(rows, small, tensor)

    def _run(self, img: np.ndarray, small: np.ndarray, tensor: np.ndarray) -> None:
        for kernel, dst in self._steps:
            kernel(img, dst)
            img = dst
        final = area_normalize if self.area else linear_normalize
        final(img, self._rows, *self.taps, small, tensor, self.rgb, self.scale, self.shift)
