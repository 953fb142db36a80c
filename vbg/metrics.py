"""Segmentation metrics, one implementation for train/, `vbg eval` and the benchmarks.

All functions take binary masks (bool or {0,1}) of one image; datasets are summarised by
averaging per-image values, as the reference COCO-person result is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def mean_metrics(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Per-image means of dice/iou/pixel_acc, plus the image count."""
    rows = list(rows)
    if not rows:
        return {"images": 0, "dice": float("nan"), "iou": float("nan"), "pixel_acc": float("nan")}
    return {
        "images": len(rows),
        "dice": float(np.mean([r["dice"] for r in rows])),
        "iou": float(np.mean([r["iou"] for r in rows])),
        "pixel_acc": float(np.mean([r["pixel_acc"] for r in rows])),
    }


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
