"""Segmentation metrics, one implementation for train/, `vbg eval` and the benchmarks.

All functions take binary masks (bool or {0,1}) of one image; datasets are summarised by
averaging per-image values, as the reference COCO-person result is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np


def _as_bool(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == bool else a > 0


def confusion(pred: np.ndarray, true: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) pixel counts."""
    p, t = _as_bool(pred), _as_bool(true)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth {t.shape}")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    tn = p.size - tp - fp - fn
    return tp, fp, fn, tn


def image_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Dice, IoU and pixel accuracy of one image.

    An image with no person in either mask is a perfect 1.0 on Dice and IoU: the model
    correctly found nothing (otherwise empty images would be undefined).
    """
    tp, fp, fn, tn = confusion(pred, true)
    union = tp + fp + fn
    dice = 1.0 if union == 0 else 2.0 * tp / (2 * tp + fp + fn)
    iou = 1.0 if union == 0 else tp / union
    acc = (tp + tn) / float(tp + fp + fn + tn)
    return {"dice": dice, "iou": iou, "pixel_acc": acc}


def boundary_width(shape: tuple[int, ...]) -> int:
    """The band half-width `boundary_iou` uses by default: 0.5 % of the image diagonal, at
    least 2 px (5 px on a 600x800 portrait, 5 on 854x480, 7 on 1280x720). A few pixels: the
    band where haloes, blurred outlines and stair steps live, which whole-mask IoU barely
    sees."""
    return max(2, round(0.005 * float(np.hypot(shape[0], shape[1]))))


def _inner_band(m: np.ndarray, d: int) -> np.ndarray:
    # The mask minus its erosion by a (2d+1) square: pixels within d (chessboard) of the
    # outline. The image border is not an outline (replicated), so a person cut off by the
    # frame is not scored on the cut.
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))
    er = cv2.erode(m, k, borderType=cv2.BORDER_REPLICATE)
    return (m > 0) & (er == 0)


def boundary_iou(pred: np.ndarray, true: np.ndarray, width: int | None = None) -> float:
    """Boundary IoU (Cheng et al., "Boundary IoU", CVPR 2021): the IoU of the two masks'
    inner bands of half-width `width` px (default `boundary_width`). It counts only pixels
    near an outline, so a band of wrong pixels along the edge (a halo, a blurred or
    stair-stepped outline) moves it a lot, where whole-mask IoU is dominated by the
    interior. Both masks empty: 1.0.
    """
    p = _as_bool(pred).astype(np.uint8)
    t = _as_bool(true).astype(np.uint8)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth {t.shape}")
    d = boundary_width(p.shape) if width is None else int(width)
    if d < 1:
        raise ValueError("width must be >= 1")
    bp, bt = _inner_band(p, d), _inner_band(t, d)
    union = int(np.count_nonzero(bp | bt))
    return 1.0 if union == 0 else int(np.count_nonzero(bp & bt)) / union


def mean_metrics(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Per-image means of dice/iou/pixel_acc (and boundary_iou when every row has it), plus
    the image count."""
    rows = list(rows)
    if not rows:
        return {"images": 0, "dice": float("nan"), "iou": float("nan"), "pixel_acc": float("nan")}
    keys = ["dice", "iou", "pixel_acc"]
    if all("boundary_iou" in r for r in rows):
        keys.append("boundary_iou")
    return {"images": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


def dtssd(pred_seq: Sequence[np.ndarray], true_seq: Sequence[np.ndarray]) -> float:
    """Temporal flicker as in Robust Video Matting: the RMS over pixels of the difference
    between the predicted and the true frame-to-frame change of the mask, averaged over
    frame pairs, x100. Masks are alpha in [0, 1] (floats) or binary.

    0 for a predictor whose mask changes exactly as the truth does; larger means flicker.
    """
    if len(pred_seq) != len(true_seq):
        raise ValueError("prediction and ground-truth sequences differ in length")
    if len(pred_seq) < 2:
        return 0.0
    vals = []
    for i in range(1, len(pred_seq)):
        dp = pred_seq[i].astype(np.float32) - pred_seq[i - 1].astype(np.float32)
        dt = true_seq[i].astype(np.float32) - true_seq[i - 1].astype(np.float32)
        if dp.max(initial=0) > 1 or dt.max(initial=0) > 1:
            raise ValueError("dtssd expects masks scaled to [0, 1]")
        vals.append(float(np.sqrt(np.mean((dp - dt) ** 2))))
    return 100.0 * float(np.mean(vals))
