"""BCE + Dice (+ boundary) against values worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from train.losses import boundary_band, seg_losses  # noqa: E402

torch.set_num_threads(1)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bce(x: float, t: float) -> float:
    # -[t log s(x) + (1-t) log(1 - s(x))]
    return -(t * math.log(_sig(x)) + (1 - t) * math.log(1 - _sig(x)))


def _t(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[None, None]


LOGITS = [[0.0, 2.0], [-1.0, 3.0]]
TARGET = [[1.0, 0.0], [0.0, 1.0]]


def test_bce_and_dice_match_hand_computation():
    out = seg_losses(_t(LOGITS), _t(TARGET), bce_weight=1.0, dice_weight=1.0)
    pairs = [(0.0, 1), (2.0, 0), (-1.0, 0), (3.0, 1)]
    bce = sum(_bce(x, t) for x, t in pairs) / 4
    # bce = (log 2 + (2 + log(1+e^-2)) + log(1+e^-1) + log(1+e^-3)) / 4
    assert out["bce"].item() == pytest.approx(bce, abs=1e-6)
    assert bce == pytest.approx(0.7955, abs=1e-4)
    p = [_sig(x) for x, _ in pairs]
    inter = p[0] * 1 + p[3] * 1
    dice = 1 - (2 * inter + 1) / (sum(p) + 2 + 1)  # smooth = 1
    assert out["dice"].item() == pytest.approx(dice, abs=1e-6)
    assert out["total"].item() == pytest.approx(bce + dice, abs=1e-6)
    assert "boundary" not in out  # only computed when weighted


def test_weights_scale_the_total():
    out = seg_losses(_t(LOGITS), _t(TARGET), bce_weight=0.25, dice_weight=2.0)
    assert out["total"].item() == pytest.approx(
        0.25 * out["bce"].item() + 2.0 * out["dice"].item(), abs=1e-6
    )


def test_ignored_pixels_take_no_part():
    ignore = _t([[0.0, 1.0], [0.0, 0.0]])  # the (0,1) pixel: logit 2, target 0
    out = seg_losses(_t(LOGITS), _t(TARGET), ignore)
    pairs = [(0.0, 1), (-1.0, 0), (3.0, 1)]
    assert out["bce"].item() == pytest.approx(sum(_bce(x, t) for x, t in pairs) / 3, abs=1e-6)
    p = [_sig(x) for x, _ in pairs]
    dice = 1 - (2 * (p[0] + p[2]) + 1) / (sum(p) + 2 + 1)
    assert out["dice"].item() == pytest.approx(dice, abs=1e-6)

    # Whatever the model says at the ignored pixel changes nothing, and gets no gradient.
    logits = _t([[0.0, -7.0], [-1.0, 3.0]]).requires_grad_(True)
    out2 = seg_losses(logits, _t([[1.0, 1.0], [0.0, 1.0]]), ignore, boundary_weight=1.0)
    for k in ("bce", "dice"):
        assert out2[k].item() == pytest.approx(out[k].item(), abs=1e-6)
    out2["total"].backward()
    assert logits.grad[0, 0, 0, 1].item() == 0.0
    assert logits.grad[0, 0, 0, 0].item() != 0.0


def test_dice_is_averaged_per_image():
    # Image 1: perfect and confident; image 2: confident and completely wrong.
    logits = torch.stack([_t([[20.0, -20.0]])[0], _t([[-20.0, 20.0]])[0]])
    target = torch.stack([_t([[1.0, 0.0]])[0], _t([[1.0, 0.0]])[0]])
    out = seg_losses(logits, target)
    d1 = 1 - (2 * 1 + 1) / (1 + 1 + 1)  # 0
    d2 = 1 - (0 + 1) / (1 + 1 + 1)  # 2/3
    assert out["dice"].item() == pytest.approx((d1 + d2) / 2, abs=1e-6)


def test_empty_target_and_empty_prediction_cost_nothing():
    out = seg_losses(torch.full((1, 1, 4, 4), -30.0), torch.zeros(1, 1, 4, 4))
    assert out["dice"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["bce"].item() == pytest.approx(0.0, abs=1e-6)


def test_boundary_band_and_term():
    target = torch.zeros(1, 1, 7, 7)
    target[..., 2:5, 2:5] = 1.0
    band = boundary_band(target, 1)
    # Dilation (rows/cols 1..5) minus erosion (the centre pixel only).
    expected = torch.zeros(7, 7)
    expected[1:6, 1:6] = 1.0
    expected[3, 3] = 0.0
    assert torch.equal(band[0, 0], expected)

    logits = torch.zeros(1, 1, 7, 7)  # BCE = log 2 everywhere
    out = seg_losses(logits, target, boundary_weight=0.5, boundary_px=1)
    assert out["boundary"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert out["total"].item() == pytest.approx(
        out["bce"].item() + out["dice"].item() + 0.5 * math.log(2), abs=1e-6
    )


def test_loss_is_fp32_under_half_inputs():
    out = seg_losses(_t(LOGITS).to(torch.bfloat16), _t(TARGET))
    assert out["total"].dtype == torch.float32
