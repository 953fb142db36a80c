from __future__ import annotations

import warnings

import numpy as np
import pytest

from vbg.card import InputSpec, ModelCard, OutputSpec, load_card
from vbg.engines import create_engine
from vbg.segmenter import Segmenter, model_input_size, preprocess, sigmoid_
from vbg.timing import StageTimer

DEFAULT = InputSpec(height=160, width=288)


@pytest.mark.parametrize(
    ("frame_hw", "want"),
    [((720, 1280), (160, 288)), ((800, 600), (256, 192)), ((1080, 1920), (160, 288))],
)
def test_model_input_size(frame_hw, want):
    assert model_input_size(*frame_hw, DEFAULT) == want
    assert model_input_size(frame_hw, DEFAULT) == want  # the (h, w) tuple form


def test_model_input_size_stretch():
    spec = InputSpec(height=160, width=288, fit="stretch")
    assert model_input_size(800, 600, spec) == (160, 288)


def test_preprocess_numbers_by_hand_rgb():
    spec = InputSpec(height=4, width=6, fit="stretch")  # frame already at model size: no resize
    frame = np.empty((4, 6, 3), np.uint8)
    frame[...] = (10, 20, 30)  # B, G, R
    x = preprocess(frame, spec)
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32
    # RGB order: channel 0 is red = 30.
    want = [
        (30 / 255 - 0.485) / 0.229,
        (20 / 255 - 0.456) / 0.224,
        (10 / 255 - 0.406) / 0.225,
    ]
    for c in range(3):
        np.testing.assert_allclose(x[0, c], want[c], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(want, [-1.604161, -1.685574, -1.630153], atol=1e-5)


def test_preprocess_bgr_order_mean_std_scale():
    spec = InputSpec(
        height=2,
        width=2,
        fit="stretch",
        color_order="BGR",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.25, 1.0),
        scale=100.0,
    )
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[..., 0] = 100  # blue
    frame[..., 2] = 50  # red
    x = preprocess(frame, spec)
    np.testing.assert_allclose(x[0, 0], (1.0 - 0.5) / 0.5)  # blue first
    np.testing.assert_allclose(x[0, 1], (0.0 - 0.5) / 0.25)
    np.testing.assert_allclose(x[0, 2], (0.5 - 0.5) / 1.0)


def test_preprocess_resizes_with_area_and_keeps_colour_layout():
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, :640] = (255, 0, 0)  # left half pure blue
    x = preprocess(frame, DEFAULT)
    assert x.shape == (1, 3, 160, 288)
    blue_hi = (1.0 - 0.406) / 0.225
    blue_lo = (0.0 - 0.406) / 0.225
    np.testing.assert_allclose(x[0, 2, :, :140], blue_hi, atol=1e-5)  # blue is channel 2 in RGB
    np.testing.assert_allclose(x[0, 2, :, 148:], blue_lo, atol=1e-5)
    np.testing.assert_allclose(x[0, 0], (0 - 0.485) / 0.229, atol=1e-5)  # no red anywhere
    # INTER_AREA averages the seam instead of picking a side.
    assert blue_lo < x[0, 2, 0, 143:145].mean() < blue_hi


def test_preprocess_portrait_and_upscale():
    x = preprocess(np.full((800, 600, 3), 128, np.uint8), DEFAULT)
    assert x.shape == (1, 3, 256, 192)
    small = preprocess(np.full((40, 30, 3), 128, np.uint8), DEFAULT)  # enlarged: bilinear
    assert small.shape == (1, 3, 256, 192)
    np.testing.assert_allclose(small, x, atol=1e-6)  # a flat frame stays flat either way


def test_preprocess_writes_into_out():
    out = np.empty((1, 3, 160, 288), np.float32)
    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    got = preprocess(frame, DEFAULT, out=out)
    assert got is out
    np.testing.assert_array_equal(out, preprocess(frame, DEFAULT))
    with pytest.raises(ValueError):
        preprocess(frame, DEFAULT, out=np.empty((1, 3, 10, 10), np.float32))


def test_preprocess_rejects_bad_frames():
    with pytest.raises(TypeError):
        preprocess(np.zeros((10, 10, 3), np.float32), DEFAULT)
    with pytest.raises(ValueError):
        preprocess(np.zeros((10, 10), np.uint8), DEFAULT)


def test_sigmoid_by_hand_without_overflow():
    x = np.array([0.0, 2.0, -2.0, 100.0, -100.0, 1000.0, -1000.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = sigmoid_(x.copy())
    np.testing.assert_allclose(got, [0.5, 0.880797, 0.119203, 1.0, 0.0, 1.0, 0.0], atol=1e-6)


class FixedEngine:
    name = "fixed"

    def __init__(self, value: np.ndarray):
        self.value = value
        self.calls = []

    def run(self, x):
        self.calls.append(x.shape)
        h, w = x.shape[2:]
        return np.broadcast_to(self.value, (1, 1, h, w)).astype(np.float32)

    def close(self):
        pass


def _card(kind="logits", h=32, w=64) -> ModelCard:
    return ModelCard(
        name="t",
        architecture="Unet",
        encoder="x",
        input=InputSpec(height=h, width=w),
        output=OutputSpec(kind=kind),
        files={},
    )


def test_segmenter_logits_to_prob():
    seg = Segmenter(_card("logits"), FixedEngine(np.float32(2.0)))
    prob = seg(np.zeros((90, 160, 3), np.uint8))
    assert prob.shape == (32, 64) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-2.0)), rtol=1e-6)


def test_segmenter_probability_output_is_clipped():
    seg = Segmenter(_card("probability"), FixedEngine(np.float32(1.3)))
    np.testing.assert_array_equal(seg(np.zeros((90, 160, 3), np.uint8)), 1.0)


def test_segmenter_reuses_input_buffer_per_size():
    seg = Segmenter(_card(), FixedEngine(np.float32(0.0)))
    a = seg.prepare(np.zeros((90, 160, 3), np.uint8))
    b = seg.prepare(np.ones((90, 160, 3), np.uint8))
    assert a is b
    c = seg.prepare(np.zeros((160, 90, 3), np.uint8))
    assert c is not a and c.shape == (1, 3, 64, 32)


def test_segmenter_times_its_stages():
    timer = StageTimer()
    seg = Segmenter(_card(), FixedEngine(np.float32(0.0)))
    seg(np.zeros((90, 160, 3), np.uint8), timer=timer)
    frame = timer.end_frame()
    assert set(frame) == {"preprocess", "inference", "total"}


def test_segmenter_on_tiny_model(tiny_card):
    card = load_card(tiny_card)
    engine = create_engine("onnxruntime", card, threads=1)
    seg = Segmenter(card, engine)
    frame = np.random.default_rng(1).integers(0, 256, (540, 960, 3), dtype=np.uint8)
    prob = seg(frame)
    assert prob.shape == model_input_size(540, 960, card.input) == (64, 96)
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    # The same frame twice gives the same map (no state in the segmenter).
    np.testing.assert_array_equal(prob, seg(frame))
