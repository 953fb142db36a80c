"""A prior model's state in the runtime: the previous probability fed back as the fourth
input channel, forgotten on reset, on a scene cut and for a new frame size."""

from __future__ import annotations

import numpy as np
import pytest

from vbg.card import load_card
from vbg.engines import create_engine
from vbg.segmenter import CUT_MEAN_DIFF, Segmenter


class RecordingEngine:
    """Wraps a real engine and keeps a copy of every input it ran."""

    def __init__(self, engine):
        self.engine, self.name, self.inputs = engine, engine.name, []

    def run(self, x):
        self.inputs.append(x.copy())
        return self.engine.run(x)

    def close(self):
        self.engine.close()


@pytest.fixture()
def prior_seg(tiny_prior_card):
    card = load_card(tiny_prior_card)
    assert card.input.prior and card.input.channels == 4
    eng = RecordingEngine(create_engine("onnxruntime", card, threads=1))
    yield Segmenter(card, eng)
    eng.close()


def _frame(seed: int, hw=(256, 384)) -> np.ndarray:
    """A picture with large shapes (pixel noise would average out at model resolution)."""
    import cv2

    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, hw[::-1], interpolation=cv2.INTER_NEAREST)


def _step(seg: Segmenter, frame: np.ndarray) -> np.ndarray:
    prob = seg(frame)
    seg.remember(prob)
    return prob


def test_previous_probability_is_the_next_input(prior_seg):
    seg, eng = prior_seg, prior_seg.engine
    frame = _frame(1)
    first = _step(seg, frame)
    assert eng.inputs[0].shape == (1, 4, 64, 96)
    np.testing.assert_array_equal(eng.inputs[0][0, 3], 0.0)  # no previous frame
    second = _step(seg, frame)
    np.testing.assert_allclose(eng.inputs[1][0, 3], 2 * first - 1, atol=1e-6)
    np.testing.assert_array_equal(eng.inputs[1][0, :3], eng.inputs[0][0, :3])
    assert np.abs(second - first).max() > 1e-4  # the prior changed the answer


def test_reset_makes_the_next_frame_a_still(prior_seg):
    seg = prior_seg
    frame = _frame(2)
    still = _step(seg, frame)
    _step(seg, frame)
    seg.reset()
    np.testing.assert_array_equal(seg(frame), still)


def test_a_scene_cut_forgets_the_previous_frame(prior_seg):
    seg, eng = prior_seg, prior_seg.engine
    a, b = _frame(3), 255 - _frame(3)  # every value moves by ~128 on average
    _step(seg, a)
    _step(seg, b)
    np.testing.assert_array_equal(eng.inputs[-1][0, 3], 0.0)
    # A small change (noise of a few grey levels) keeps it.
    noisy = np.clip(b.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    _step(seg, noisy)
    assert np.abs(eng.inputs[-1][0, 3]).max() > 0.0
    assert 6 < CUT_MEAN_DIFF < 128


def test_a_new_frame_size_starts_without_a_prior(prior_seg):
    seg, eng = prior_seg, prior_seg.engine
    _step(seg, _frame(4))
    _step(seg, _frame(4, (128, 192)))  # the same model size from another frame size
    np.testing.assert_array_equal(eng.inputs[-1][0, 3], 0.0)
    _step(seg, _frame(4, (384, 256)))  # another model size: a new buffer
    assert eng.inputs[-1].shape == (1, 4, 96, 64)
    np.testing.assert_array_equal(eng.inputs[-1][0, 3], 0.0)


def test_remember_checks_its_shape_and_stateless_models_ignore_it(prior_seg, tiny_card):
    seg = prior_seg
    _step(seg, _frame(5))
    with pytest.raises(ValueError, match="probability"):
        seg.remember(np.zeros((10, 10), np.float32))
    card = load_card(tiny_card)
    plain = Segmenter(card, create_engine("onnxruntime", card, threads=1))
    frame = _frame(5)
    p = plain(frame)
    plain.remember(p)
    assert plain.prepare(frame).shape == (1, 3, 64, 96)
    np.testing.assert_array_equal(plain(frame), p)


def test_a_card_with_the_wrong_channel_count_is_refused(tiny_prior_card, tmp_path):
    import json

    from vbg import VbgError

    d = json.loads(tiny_prior_card.read_text())
    d["input"]["prior"] = False
    for name in ("tiny.onnx", "tiny.pt"):
        (tmp_path / name).write_bytes((tiny_prior_card.parent / name).read_bytes())
    (tmp_path / "tiny.json").write_text(json.dumps(d))
    card = load_card(tmp_path / "tiny.json")
    for engine in ("onnxruntime", "openvino"):
        pytest.importorskip(engine)
        with pytest.raises(VbgError, match="4 input channels, not 3"):
            create_engine(engine, card, threads=1)


@pytest.mark.parametrize("tta", [False, True])
def test_frame_processor_feeds_back_and_resets(tiny_prior_card, tta):
    """The processor remembers what it computed (the mirrored average with TTA) and its
    reset (a new still, a new video) reaches the segmenter."""
    from vbg.pipeline import build_processor

    proc = build_processor(
        tiny_prior_card, engine="onnxruntime", threads=1, background=None, tta=tta
    )
    try:
        frame = _frame(6)
        first = proc.probability(frame).copy()
        plane = proc.segmenter.prepare(frame)[0, 3]
        np.testing.assert_allclose(plane, 2 * first - 1, atol=1e-6)
        second = proc.probability(frame).copy()
        assert np.abs(second - first).max() > 1e-4
        proc.reset()
        np.testing.assert_allclose(proc.probability(frame), first, atol=1e-6)
    finally:
        proc.close()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "torch"])
def test_engines_take_the_cards_channel_count(tiny_prior_card, engine):
    pytest.importorskip(engine)
    card = load_card(tiny_prior_card)
    eng = create_engine(engine, card, threads=1)
    try:
        out = eng.run(np.zeros((1, 4, 64, 96), np.float32))
        assert np.asarray(out).shape == (1, 1, 64, 96)
        with pytest.raises(ValueError, match=r"\(1, 4, h, w\)"):
            eng.run(np.zeros((1, 3, 64, 96), np.float32))
    finally:
        eng.close()
