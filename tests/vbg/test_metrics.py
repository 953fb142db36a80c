from __future__ import annotations

import math

import numpy as np
import pytest

from vbg.metrics import boundary_iou, confusion, dtssd, image_metrics, mean_metrics


def test_image_metrics_by_hand():
    pred = np.array([[1, 1, 0, 0]], np.uint8)
    true = np.array([[1, 0, 1, 0]], np.uint8)
    assert confusion(pred, true) == (1, 1, 1, 1)
    m = image_metrics(pred, true)
    assert m["dice"] == pytest.approx(2 / 4)  # 2tp / (2tp + fp + fn)
    assert m["iou"] == pytest.approx(1 / 3)  # tp / (tp + fp + fn)
    assert m["pixel_acc"] == pytest.approx(2 / 4)


def test_image_metrics_perfect_and_empty():
    t = np.zeros((4, 4), bool)
    t[1:3, 1:3] = True
    assert image_metrics(t, t) == {"dice": 1.0, "iou": 1.0, "pixel_acc": 1.0}
    empty = np.zeros((4, 4), bool)
    assert image_metrics(empty, empty) == {"dice": 1.0, "iou": 1.0, "pixel_acc": 1.0}
    m = image_metrics(empty, t)
    assert m["dice"] == 0.0 and m["iou"] == 0.0 and m["pixel_acc"] == pytest.approx(12 / 16)


def test_image_metrics_accepts_values_above_one_as_true():
    assert image_metrics(np.array([255, 0]), np.array([1, 0]))["iou"] == 1.0


def test_shape_mismatch():
    with pytest.raises(ValueError):
        image_metrics(np.zeros((2, 2)), np.zeros((2, 3)))


def test_mean_metrics():
    rows = [
        {"dice": 1.0, "iou": 1.0, "pixel_acc": 1.0},
        {"dice": 0.5, "iou": 0.0, "pixel_acc": 0.5},
    ]
    assert mean_metrics(rows) == {"images": 2, "dice": 0.75, "iou": 0.5, "pixel_acc": 0.75}
    empty = mean_metrics([])
    assert empty["images"] == 0 and math.isnan(empty["dice"])


def _moving_square(n=5, size=16):
    seq = []
    for i in range(n):
        m = np.zeros((size, size), np.float32)
        m[4:8, i : i + 4] = 1.0
        seq.append(m)
    return seq


def test_dtssd_zero_for_perfect_predictor():
    true = _moving_square()
    assert dtssd(true, true) == 0.0
    # A wrong but steady mask is not flicker either: only changes over time count.
    steady = [np.full((16, 16), 0.3, np.float32)] * 5
    assert dtssd(steady, [np.zeros((16, 16), np.float32)] * 5) == 0.0


def test_dtssd_by_hand_for_flicker():
    true = [np.zeros((2, 2), np.float32)] * 3
    # All pixels flip every frame: each step's RMS difference is 1 -> 100.
    full = [np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]
    assert dtssd(full, true) == pytest.approx(100.0)
    # One pixel of four flips: RMS sqrt(1/4) = 0.5 -> 50.
    one = [np.zeros((2, 2)), np.array([[1, 0], [0, 0]]), np.zeros((2, 2))]
    assert dtssd(one, true) == pytest.approx(50.0)
    assert dtssd(one, true) > 0


def test_dtssd_errors_and_short_sequences():
    assert dtssd([np.zeros((2, 2))], [np.zeros((2, 2))]) == 0.0
    with pytest.raises(ValueError):
        dtssd([np.zeros((2, 2))] * 2, [np.zeros((2, 2))] * 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dtssd([np.zeros((2, 2)), np.full((2, 2), 255)], [np.zeros((2, 2))] * 2)


def test_boundary_iou_scores_the_outline_not_the_interior():
    true = np.zeros((100, 100), np.uint8)
    true[20:80, 20:80] = 1
    assert boundary_iou(true, true, width=3) == 1.0
    assert boundary_iou(np.zeros_like(true), np.zeros_like(true)) == 1.0
    # A 3 px halo outside the outline: whole-mask IoU stays above 0.8, boundary IoU drops to 0.
    halo = np.zeros_like(true)
    halo[17:83, 17:83] = 1
    assert image_metrics(halo, true)["iou"] > 0.8
    b = boundary_iou(halo, true, width=3)
    assert b < 0.5
    # Bands of 3 px: by hand, pred band = 66^2 - 60^2 = 756, true band = 60^2 - 54^2 = 684,
    # they do not overlap.
    assert b == 0.0
    # The image border is not an outline: a mask touching it is scored on its real edges.
    full = np.ones_like(true)
    assert boundary_iou(full, full) == 1.0
    with pytest.raises(ValueError):
        boundary_iou(true, true[:50])


def test_mean_metrics_averages_boundary_iou_when_present():
    rows = [{"dice": 1, "iou": 1, "pixel_acc": 1, "boundary_iou": 0.5}] * 2
    assert mean_metrics(rows)["boundary_iou"] == 0.5
