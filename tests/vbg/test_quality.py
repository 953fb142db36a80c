"""--quality high: the model at two input sizes, averaged on the finer grid."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vbg import VbgError
from vbg.card import InputSpec, load_card
from vbg.cli import build_parser
from vbg.device_processor import device_path_blocker
from vbg.pipeline import FrameProcessor, build_processor
from vbg.refine import Refiner
from vbg.segmenter import Segmenter, high_quality_spec


class SizeEngine:
    """Logits that say which input size ran: +2 at the finer size, -2 at the coarser."""

    name = "size"

    def __init__(self, fine_h: int) -> None:
        self.fine_h, self.shapes = fine_h, []

    def run(self, x: np.ndarray) -> np.ndarray:
        self.shapes.append(x.shape[2:])
        h, w = x.shape[2:]
        y = np.full((1, 1, h, w), 2.0 if h == self.fine_h else -2.0, np.float32)
        y[..., : w // 4] = 20.0  # a person on the left quarter at both sizes
        return y

    def close(self) -> None:
        pass


def test_high_quality_spec_is_the_sides_times_1_4_rounded_down():
    fine = high_quality_spec(InputSpec(height=160, width=288))
    assert (fine.height, fine.width) == (224, 384)
    assert high_quality_spec(InputSpec(height=32, width=64, multiple=32)).height == 32
    with pytest.raises(ValueError, match="fit"):
        high_quality_spec(InputSpec(height=160, width=288, fit="stretch"))


def test_probability_averages_both_sizes_on_the_finer_grid(tiny_card):
    card = load_card(tiny_card)  # the engine below stands in for its network
    card = dataclasses.replace(card, input=InputSpec(height=160, width=288))
    fine_card = dataclasses.replace(card, input=high_quality_spec(card.input))
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    fine_hw = Segmenter(fine_card, None).input_size(360, 640)
    coarse_hw = Segmenter(card, None).input_size(360, 640)
    assert fine_hw[0] > coarse_hw[0]
    eng = SizeEngine(fine_h=fine_hw[0])
    proc = FrameProcessor(
        segmenter=Segmenter(fine_card, eng),
        coarse=Segmenter(card, eng),
        smoother=None,
        refiner=Refiner(),
    )
    prob = proc.probability(frame)
    assert prob.shape == fine_hw and sorted(eng.shapes) == sorted([fine_hw, coarse_hw])
    # sigmoid(2) and sigmoid(-2) average to exactly 0.5 away from the person
    np.testing.assert_allclose(prob[:, -10:], 0.5, atol=1e-6)
    assert prob[:, :2].min() > 0.99
    # The matte comes out at the frame's size, guided by the finer segmenter's small image.
    assert proc.mask(frame).shape == (360, 640)


def test_build_processor_quality_high(tiny_card):
    proc = build_processor(tiny_card, engine="onnxruntime", threads=1, background=None,
                           quality="high")  # fmt: skip
    try:
        assert proc.coarse is not None
        assert proc.coarse.card.input == load_card(tiny_card).input
        assert proc.segmenter.card.input == high_quality_spec(proc.coarse.card.input)
        frame = np.random.default_rng(1).integers(0, 256, (180, 320, 3), dtype=np.uint8)
        assert proc.mask(frame).shape == (180, 320)
    finally:
        proc.close()
    plain = build_processor(tiny_card, engine="onnxruntime", threads=1, background=None)
    assert plain.coarse is None
    plain.close()
    with pytest.raises(VbgError, match="--quality"):
        build_processor(tiny_card, engine="onnxruntime", background=None, quality="best")


def test_quality_high_refuses_a_fixed_size_model(tiny_card, tmp_path):
    card = load_card(tiny_card)
    fixed = dataclasses.replace(card, input=dataclasses.replace(card.input, fit="stretch"))
    path = fixed.save(tmp_path / "fixed.json")
    for name in card.files.values():  # the model files beside the new card
        (tmp_path / name).symlink_to(tiny_card.parent / name)
    with pytest.raises(VbgError, match="fit='stretch'"):
        build_processor(path, engine="onnxruntime", background=None, quality="high")


def test_quality_high_keeps_the_frame_on_the_host():
    opts = dict(edges="guided", feather_px=0, crf_every=0, harmonize=False, background=None)
    assert device_path_blocker(**opts) == ""
    assert device_path_blocker(**opts, quality="high") == "--quality high"
    # The device path's network call takes the 3 image planes only.
    assert "previous-frame" in device_path_blocker(**opts, prior=True)


def test_process_and_eval_take_quality():
    parser = build_parser()
    a = parser.parse_args(["process", "in.mp4", "-o", "out.mp4", "--quality", "high"])
    assert a.quality == "high"
    assert parser.parse_args(["process", "in.mp4", "-o", "out.mp4"]).quality is None
    e = parser.parse_args(["eval", "--ann", "a.json", "--images", "d", "--quality", "high"])
    assert e.quality == "high"
    with pytest.raises(SystemExit):
        parser.parse_args(["process", "in.mp4", "-o", "out.mp4", "--quality", "best"])


def _bundle(tiny_card, folder, names):
    """A fake assets folder: the tiny model's files under models/, one card per name (the
    'hq' card with a larger input size, as the bundled high-quality model has)."""
    models = folder / "models"
    models.mkdir(parents=True)
    (folder / "backgrounds").mkdir()
    card = load_card(tiny_card)
    for name in card.files.values():
        (models / name).symlink_to(tiny_card.parent / name)
    for name in names:
        spec = high_quality_spec(card.input) if name.startswith("hq") else card.input
        dataclasses.replace(card, name=name, input=spec).save(models / f"{name}.json")
    return folder


def test_quality_high_runs_the_bundled_hq_model_beside_the_default(
    tiny_card, tmp_path, monkeypatch
):
    import vbg.assets

    root = _bundle(tiny_card, tmp_path / "assets", ["default", "hq"])
    monkeypatch.setattr(vbg.assets, "assets_dir", lambda: root)
    proc = build_processor(None, engine="onnxruntime", threads=1, background=None, quality="high")
    try:
        assert proc.segmenter.card.path == root / "models" / "hq.json"
        assert proc.coarse is not None and proc.coarse.card.path == root / "models" / "default.json"
        assert proc.segmenter.engine is not proc.coarse.engine  # one engine per network
        frame = np.random.default_rng(2).integers(0, 256, (180, 320, 3), dtype=np.uint8)
        assert proc.mask(frame).shape == (180, 320)
    finally:
        proc.close()
    closed = []
    for seg in (proc.segmenter, proc.coarse):
        seg.engine.close = lambda closed=closed: closed.append(1)
    proc.close()
    assert len(closed) == 2  # both engines are closed, not only the finer one's

    # Without a bundled hq model: the default at its two sizes, one engine.
    (root / "models" / "hq.json").unlink()
    proc = build_processor(None, engine="onnxruntime", threads=1, background=None, quality="high")
    try:
        assert proc.segmenter.card.path == proc.coarse.card.path == root / "models" / "default.json"
        assert proc.segmenter.card.input == high_quality_spec(proc.coarse.card.input)
        assert proc.segmenter.engine is proc.coarse.engine
    finally:
        proc.close()


def test_quality_high_takes_the_hq_int8_copy_with_the_int8_default(
    tiny_card, tmp_path, monkeypatch
):
    import vbg.assets

    root = _bundle(tiny_card, tmp_path / "assets", ["default", "default-int8", "hq", "hq-int8"])
    monkeypatch.setattr(vbg.assets, "assets_dir", lambda: root)
    # The CPU engines run the INT8 copies, torch the float models.
    for engine, fine, coarse in (
        ("onnxruntime", "hq-int8.json", "default-int8.json"),
        ("torch", "hq.json", "default.json"),
    ):
        proc = build_processor(None, engine=engine, threads=1, background=None, quality="high")
        try:
            assert (proc.segmenter.card.path.name, proc.coarse.card.path.name) == (fine, coarse)
        finally:
            proc.close()
