"""Fast area (box-average) downscaling for the per-frame hot path.

OpenCV's INTER_AREA has a SIMD fast path only for an exact factor of 2; any other factor
(1280x720 -> 288x160 is 4.44x) takes a generic path that costs ~1.7 ms per 720p frame on
a 2-core machine, while a 2x halving costs ~0.1 ms. So `shrink_area` halves exactly (2x2
box averages) while at least another 2x remains, then does the rest with INTER_AREA on the
smaller image: ~2.4x faster at 720p. The result is a box average over the same footprint
with a slightly softer edge (mean difference ~0.2-0.4 grey levels from a one-step
INTER_AREA on camera frames), not aliased like a bilinear shrink would be.
"""

from __future__ import annotations

import cv2
import numpy as np

# Keep at least this much shrinking for the final INTER_AREA step: the more of the
# reduction the 2x steps take, the further the result drifts from a one-step average.
MIN_FINAL_FACTOR = 2


def halvings(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    """How many exact 2x halvings `shrink_area` does before the final INTER_AREA step."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    n = 0
    # Even sides only: OpenCV's fast path needs an exact factor of 2.
    while (
        sh % 2 == 0
        and sw % 2 == 0
        and sh >= 2 * MIN_FINAL_FACTOR * dh
        and sw >= (2 * MIN_FINAL_FACTOR * dw)
    ):
        sh, sw, n = sh // 2, sw // 2, n + 1
    return n


def shrink_area(
    src: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None
) -> np.ndarray:
    """Area-average `src` down to size=(width, height) (cv2 order); `dst` is reused if given.

    Callers use it only when shrinking on both axes (enlarging is bilinear elsewhere).
    """
    w, h = size
    img = src
    for _ in range(halvings(src.shape[:2], (h, w))):
        ih, iw = img.shape[:2]
        img = cv2.resize(img, (iw // 2, ih // 2), interpolation=cv2.INTER_AREA)
    if img.shape[:2] == (h, w):
        if dst is None:
            return img if img is not src else src.copy()
        dst[...] = img
        return dst
    return cv2.resize(img, (w, h), dst=dst, interpolation=cv2.INTER_AREA)
