"""The compiled model input (vbg.fused_input) against the OpenCV steps it replaces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.card import InputSpec, ModelCard, OutputSpec
from vbg.fused_input import InputPlan, fixed_taps
from vbg.segmenter import Segmenter, normalize_into, resize_for_model


class NoEngine:
    name = "none"

    def run(self, x):  # pragma: no cover - prepare() never runs the engine
        raise AssertionError


def _card(color_order: str = "RGB", h: int = 160, w: int = 288) -> ModelCard:
    spec = InputSpec(height=h, width=w, color_order=color_order, mean=(0.4, 0.5, 0.6))
    return ModelCard(
        name="t", architecture="Unet", encoder="x", input=spec, output=OutputSpec(), files={}
    )


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    # Texture at every scale (noise, blurred noise, a hard edge): rounding differences
    # between two implementations show up on such content, not on flat colour.
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = cv2.addWeighted(noise, 0.5, cv2.GaussianBlur(noise, (0, 0), 3), 0.5, 0)
    frame[:, : w // 3] //= 3
    return frame


def _opencv_input(frame: np.ndarray, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    small = resize_for_model(frame, card.input)
    tensor = np.empty((1, 3, *small.shape[:2]), np.float32)
    return small, normalize_into(small, card.input, tensor)


@pytest.mark.parametrize(
    "frame_hw",
    [(720, 1280), (1080, 1920), (480, 854), (480, 640), (600, 800), (2160, 3840), (160, 288)],
)
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_compiled_input_is_the_opencv_steps_to_the_bit(frame_hw, order):
    card = _card(order)
    frame = _frame(*frame_hw)
    seg = Segmenter(card, NoEngine())
    x = seg.prepare(frame)
    assert seg._plan is not None  # the compiled passes ran, not the fallback
    small, tensor = _opencv_input(frame, card)
    np.testing.assert_array_equal(seg.small, small)
    np.testing.assert_allclose(x, tensor, rtol=0, atol=1e-5)


def test_fixed_taps_reproduce_opencvs_bilinear_weights():
    # Every phase of a non-integer scale, both directions of rounding: one-row images
    # whose pixels are the weights' probes (0 and 255 alternating).
    for n_src, n_dst in [(320, 288), (270, 160), (481, 400), (5, 3)]:
        i0, i1, w0 = fixed_taps(n_src, n_dst)
        assert ((i0 >= 0) & (i0 <= i1) & (i1 < n_src)).all()
        src = np.zeros((1, n_src), np.uint8)
        src[0, ::2] = 255
        want = cv2.resize(src, (n_dst, 1), interpolation=cv2.INTER_LINEAR)[0].astype(int)
        v = src[0, i0].astype(int) * w0 + src[0, i1].astype(int) * (2048 - w0)
        got = ((2048 * (v >> 4)) >> 16) + 2 >> 2  # one row: the vertical weight is 2048
        np.testing.assert_array_equal(got, want)


def test_shrinks_the_plan_does_not_cover_keep_the_opencv_steps():
    card = _card()
    for frame in (
        _frame(100, 200),  # enlarging
        _frame(721, 1280),  # odd height: no halving, a 4.5x area step remains
        _frame(720, 1300)[:, 10:1290],  # a view: not contiguous
    ):
        seg = Segmenter(card, NoEngine())
        x = seg.prepare(frame)
        assert seg._plan is None or not seg._plan.fits(frame)
        small, tensor = _opencv_input(frame, card)
        np.testing.assert_array_equal(seg.small, small)
        np.testing.assert_array_equal(x, tensor)


def test_a_new_frame_size_with_the_same_model_size_gets_its_own_plan():
    seg = Segmenter(_card(), NoEngine())
    x1 = seg.prepare(_frame(720, 1280))
    plan = seg._plan
    seg.prepare(_frame(720, 1280, seed=1))
    assert seg._plan is plan  # made once per frame size
    frame = _frame(1080, 1920)
    x2 = seg.prepare(frame)
    assert x2 is x1 and seg._plan is not plan and seg._plan.fits(frame)
    np.testing.assert_array_equal(seg.small, _opencv_input(frame, _card())[0])


def test_plan_is_refused_where_the_halvings_leave_an_area_step():
    assert InputPlan.covers((720, 1280), (160, 288))
    assert InputPlan.covers((160, 288), (160, 288))
    assert not InputPlan.covers((721, 1280), (160, 288))
    assert not InputPlan.covers((100, 200), (160, 288))


@pytest.mark.parametrize(
    "crop_hw, model_hw",
    [((301, 251), (224, 224)), ((480, 270), (288, 160)), ((688, 916), (192, 256))],
)
def test_area_plan_on_a_crop_is_a_box_average(crop_hw, model_hw):
    """vbg.roi's crops: read in place from a larger frame, halvings then a box average;
    without halvings (odd sides) that is OpenCV's INTER_AREA to a grey level, with them
    OpenCV's halvings then INTER_AREA."""
    frame = _frame(720, 1280)
    top, left = 17, 33
    (h, w), (mh, mw) = crop_hw, model_hw
    plan = InputPlan(crop_hw, model_hw, True, (1 / 255,) * 3, (0.0,) * 3, area=True)
    small = np.empty((mh, mw, 3), np.uint8)
    tensor = np.empty((1, 3, mh, mw), np.float32)
    plan.crop(frame, top, left, small, tensor)
    img = frame[top : top + h, left : left + w]
    while (
        img.shape[0] % 2 == 0
        and img.shape[1] % 2 == 0
        and img.shape[0] >= 2 * mh
        and (img.shape[1] >= 2 * mw)
    ):
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    want = cv2.resize(img, (mw, mh), interpolation=cv2.INTER_AREA)
    diff = np.abs(small.astype(np.int16) - want)
    assert diff.max() <= 1 and diff.mean() < 0.01
    np.testing.assert_allclose(tensor[0, 0], small[..., 2] / 255.0, atol=1e-6)  # RGB order


def test_area_taps_cover_each_cell_once():
    from vbg.fused_input import ONE, area_taps

    for n_src, n_dst in ((344, 192), (458, 256), (7, 7), (1279, 288)):
        first, w = area_taps(n_src, n_dst)
        assert (w.sum(axis=1) == ONE).all() and (w >= 0).all()
        assert first.min() >= 0 and first.max() + w.shape[1] <= n_src
        # Every source cell is used with the same total weight: n_dst / n_src of all.
        total = np.zeros(n_src)
        for d in range(n_dst):
            total[first[d] : first[d] + w.shape[1]] += w[d]
        np.testing.assert_allclose(total / ONE, n_dst / n_src, atol=2e-3)
    with pytest.raises(ValueError, match="only shrink"):
        area_taps(100, 200)
