"""Framing a background: put its landmark beside the person, not behind the head.

Every bundled background has a focal point (the landmark's position, x and y from 0 to 1)
in assets/backgrounds/focal-points.json. `fit_background` scales the image to cover the
frame (times a zoom) and places the crop window so that the focal point lands in the free
space beside the person:

  align=center  the plain centred cover-crop (the focal point is ignored)
  align=left    the landmark in the middle of the space left of the person
  align=right   ... right of the person
  align=auto    the side with more free space, from where the person is in the first frame

The crop window stays inside the image where it can: a zoom (up to MAX_AUTO_ZOOM when none
is given) gives room to slide it. What it still lacks is filled by mirroring the image at
its edge, which for the sky, grass and water at the sides of these photos looks natural.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ALIGNS = ("auto", "left", "right", "center")
MAX_AUTO_ZOOM = 1.2
MAX_ZOOM = 4.0
# Where the person is assumed to be before a frame was seen (a centred head and shoulders).
DEFAULT_PERSON_BOX = (0.35, 0.65)
# The person box is measured in the upper part of the frame: the head and shoulders are
# what would hide a landmark; arms and a desk at the bottom would only widen the box.
PERSON_ROWS = 0.6
FOCAL_FILE = "focal-points.json"


@dataclass(frozen=True)
class Framing:
    """How backgrounds images are fitted (`--background-align`, `--background-zoom`)."""

    align: str = "auto"
    zoom: float | None = None  # None: as little as needed, up to MAX_AUTO_ZOOM

    def __post_init__(self) -> None:
        if self.align not in ALIGNS:
            raise ValueError(f"align must be one of {', '.join(ALIGNS)}, not {self.align!r}")
        if self.zoom is not None and not 1.0 <= self.zoom <= MAX_ZOOM:
            raise ValueError(f"zoom must be between 1 and {MAX_ZOOM:g}, not {self.zoom:g}")


def load_focal_points(folder: Path) -> dict[str, tuple[float, float]]:
    """File stem -> (x, y) focal point from the folder's focal-points.json (if any)."""
    path = folder / FOCAL_FILE
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        Path(name).stem: (float(v["x"]), float(v["y"]))
        for name, v in raw.items()
        if isinstance(v, dict) and "x" in v and "y" in v
    }


def person_box(alpha_u8: np.ndarray, *, min_fraction: float = 0.002) -> tuple[float, float] | None:
    """Horizontal extent (x0, x1 in 0..1) of the person in the upper rows of a matte,
    between the 2nd and 98th percentile of person columns; None if there is no person."""
    h, w = alpha_u8.shape[:2]
    top = alpha_u8[: max(1, int(h * PERSON_ROWS))]
    cols = np.count_nonzero(top > 127, axis=0).astype(np.float64)
    total = cols.sum()
    if total < min_fraction * top.size:
        return None
    cdf = np.cumsum(cols) / total
    x0 = int(np.searchsorted(cdf, 0.02))
    x1 = int(np.searchsorted(cdf, 0.98))
    return x0 / w, (x1 + 1) / w


def target_x(align: str, box: tuple[float, float] | None) -> float | None:
    """Where (0..1 across the frame) the focal point should land; None = centred crop."""
    if align == "center":
        return None
    x0, x1 = box or DEFAULT_PERSON_BOX
    left_space, right_space = x0, 1.0 - x1
    side = align
    if align == "auto":
        side = "left" if left_space > right_space else "right"
    return x0 / 2 if side == "left" else (1.0 + x1) / 2


def fit_background(
    img: np.ndarray,
    h: int,
    w: int,
    *,
    focal: tuple[float, float] | None = None,
    framing: Framing = Framing(),
    box: tuple[float, float] | None = None,
) -> np.ndarray:
    """`img` fitted to h x w: covered (never stretched), zoomed, and cropped so that the
    focal point sits beside the person box `box` (see the module docstring). Returns a new
    C-contiguous h x w x 3 array."""
    ih, iw = img.shape[:2]
    if ih < 1 or iw < 1 or h < 1 or w < 1:
        raise ValueError(f"cannot fit {iw}x{ih} to {w}x{h}")
    fx, fy = focal if focal is not None else (0.5, 0.5)
    tx = target_x(framing.align, box) if focal is not None or framing.align != "auto" else None
    cover = max(h / ih, w / iw)
    zoom = framing.zoom
    if zoom is None:
        zoom = 1.0 if tx is None else _least_zoom(iw * cover / w, fx, tx)
    s = cover * zoom
    sw, sh = max(w, round(iw * s)), max(h, round(ih * s))
    if (sw, sh) != (iw, ih):
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (sw, sh), interpolation=interp)
    if tx is None:
        x0 = (sw - w) // 2
        y0 = (sh - h) // 2
    else:
        x0 = round(fx * sw - tx * w)
        # Vertically the focal point keeps its relative height in the frame.
        y0 = min(max(0, round(fy * (sh - h))), sh - h)
    pad_l, pad_r = max(0, -x0), max(0, x0 + w - sw)
    if pad_l or pad_r:
        pad_l, pad_r = min(pad_l, sw - 1), min(pad_r, sw - 1)  # a mirror is at most 1 image
        img = cv2.copyMakeBorder(img, 0, 0, pad_l, pad_r, cv2.BORDER_REFLECT)
        x0 = min(max(0, x0 + pad_l), img.shape[1] - w)
    return np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])


def _least_zoom(rel_width: float, fx: float, tx: float) -> float:
    """The smallest zoom (1..MAX_AUTO_ZOOM) at which a crop window of the frame's width, with
    the focal point at tx, stays inside the image. rel_width: the covered image's width
    over the frame's. The window fits when 0 <= fx*W - tx <= W - 1 with W = rel_width*z."""
    need = 1.0
    if fx > 0:
        need = max(need, tx / (fx * rel_width))
    if fx < 1:
        need = max(need, (1.0 - tx) / ((1.0 - fx) * rel_width))
    return min(MAX_AUTO_ZOOM, need)
