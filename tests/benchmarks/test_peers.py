"""benchmarks/peers.py without the network: model extraction from a wheel built here, the
download command, the A/B schedule, the ratio, the peer's preprocessing and its place in a
FrameProcessor (with a fake interpreter), and the raw-probability masker."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import peers
from vbg import VbgError


def make_wheel(
    folder: Path, payload: bytes = b"TFL3 fake model", member: str | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"mediapipe-{peers.MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mediapipe/__init__.py", "")
        z.writestr(member or peers.MODEL_MEMBER, payload)
        z.writestr("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite", b"other")
    return wheel


def no_network(*a, **k):
    raise AssertionError("pip must not be called")


def test_extract_model_takes_exactly_the_landscape_file(tmp_path):
    wheel = make_wheel(tmp_path / "cache", b"landscape bytes")
    out = peers.extract_model(wheel, tmp_path / "dest")
    assert out.name == "selfie_segmentation_landscape.tflite"
    assert out.read_bytes() == b"landscape bytes"
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == [out.name]


def test_extract_model_errors(tmp_path):
    wheel = make_wheel(tmp_path / "w", member="mediapipe/other.tflite")
    with pytest.raises(VbgError, match="does not contain"):
        peers.extract_model(wheel, tmp_path / "d")
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(VbgError, match="not a valid wheel"):
        peers.extract_model(bad, tmp_path / "d")


def test_ensure_model_uses_the_cache_first(tmp_path):
    cache = tmp_path / "cache"
    make_wheel(cache, b"cached")
    model = peers.ensure_peer_model(cache, runner=no_network)
    assert model.read_bytes() == b"cached"
    # Second call: the extracted file is reused, the wheel not even opened.
    next(cache.glob("*.whl")).unlink()
    assert peers.ensure_peer_model(cache, runner=no_network) == model


def test_ensure_model_downloads_the_pinned_wheel(tmp_path):
    cache = tmp_path / "cache"
    calls = []

    def fake_pip(cmd, **kw):
        calls.append(cmd)
        make_wheel(Path(cmd[cmd.index("-d") + 1]), b"downloaded")
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    model = peers.ensure_peer_model(cache, runner=fake_pip)
    assert model.read_bytes() == b"downloaded"
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[-1] == "mediapipe==0.10.21"
    assert cmd[cmd.index("--python-version") + 1] == "3.11"


def test_failed_download_is_one_clear_error(tmp_path):
    def failing(cmd, **kw):
        return SimpleNamespace(returncode=1, stdout="", stderr="x\nERROR: No matching distribution")

    with pytest.raises(VbgError, match="No matching distribution"):
        peers.ensure_peer_model(tmp_path / "c", runner=failing)


def test_fps_ratio():
    assert peers.fps_ratio(60.0, 30.0) == pytest.approx(2.0)
    assert peers.fps_ratio(30.0, 60.0) == pytest.approx(0.5)
    for bad in ((0.0, 30.0), (30.0, 0.0), (float("nan"), 1.0)):
        assert np.isnan(peers.fps_ratio(*bad))


class FakeInterpreter:
    """The peer engine's interface; returns a left-half person as the model would."""

    name = "fake-litert"
    height, width = 144, 256

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def run(self, x):
        self.inputs.append(x.copy())
        y = np.zeros((1, 144, 256, 1), np.float32)
        y[0, :, :128, 0] = 1.0
        return y

    def close(self) -> None:
        pass


def test_preprocessing_is_mediapipes():
    seg = peers.MediaPipeSegmenter(None, engine=FakeInterpreter())
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[..., 0] = 255  # pure blue in BGR
    x = seg.prepare(frame)
    assert x.shape == (1, 144, 256, 3) and x.dtype == np.float32
    # RGB order, range [0, 1], whole frame stretched (no padding: every pixel is blue).
    assert np.allclose(x[..., 2], 1.0) and np.allclose(x[..., :2], 0.0)
    prob = seg(frame)
    assert prob.shape == (144, 256) and prob.dtype == np.float32
    assert prob[0, 0] == pytest.approx(1.0) and prob[0, -1] == 0.0


def test_peer_runs_inside_a_frame_processor_with_every_stage_timed():
    proc = peers.peer_processor(
        peers.MediaPipeSegmenter(None, engine=FakeInterpreter()), "color:#00ff00", (120, 160)
    )
    frame = np.full((120, 160, 3), 200, np.uint8)
    out = proc.process(frame)
    proc.timer.end_frame()
    assert out.shape == frame.shape
    assert out[60, 10].tolist() == [200, 200, 200]  # left half: the "person" is kept
    assert out[60, 150].tolist() == [0, 255, 0]  # right half: the background colour
    assert {"preprocess", "inference", "smoothing", "compositing"} <= set(proc.timer.samples)
    assert proc.engine_name == "fake-litert"


def test_raw_masker_thresholds_the_upsampled_probability_at_half():
    prob = np.array([[0.2, 0.49], [0.5, 0.9]], np.float32)
    # Same size: alpha >= 128 (what vbg.evaluate counts as person) is exactly prob >= 0.5.
    same = peers.RawMasker(lambda f: prob).mask(np.zeros((2, 2, 3), np.uint8))
    assert same.dtype == np.uint8
    assert (same >= 128).tolist() == [[False, False], [True, True]]
    # Larger frame: bilinear upsampling to the frame size first.
    big = peers.RawMasker(lambda f: prob).mask(np.zeros((4, 4, 3), np.uint8))
    assert big.shape == (4, 4) and big[0, 0] < 128 and big[3, 3] >= 128


def test_lean_and_lfbw_peers_composite_and_time_every_stage():
    bg = np.zeros((120, 160, 3), np.uint8)
    bg[...] = (0, 255, 0)
    frame = np.full((120, 160, 3), 200, np.uint8)
    for cls in (peers.LeanMediaPipe, peers.LfbwStyle):
        proc = peers.WithThreads(
            cls(peers.MediaPipeSegmenter(None, engine=FakeInterpreter()), bg), 1
        )
        out = proc.process(frame)
        proc.timer.end_frame()
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert out[60, 10].tolist() == [200, 200, 200], cls  # left half: the "person"
        assert out[60, 150].tolist() == [0, 255, 0], cls  # right half: the background
        assert {"preprocess", "inference", "smoothing", "compositing"} <= set(proc.timer.samples)
        m = proc.processor.mask(frame)
        assert m.shape == (120, 160) and m[60, 10] == 255 and m[60, 150] == 0


def test_lfbw_dilates_the_thresholded_mask_and_smooths_over_time():
    bg = np.zeros((144, 256, 3), np.uint8)
    proc = peers.LfbwStyle(peers.MediaPipeSegmenter(None, engine=FakeInterpreter()), bg)
    frame = np.zeros((144, 256, 3), np.uint8)
    m = proc._matte(frame).copy()
    # The 0/1 edge at x=128, dilated by 2 px, then box-blurred over 10 px.
    assert m[70, 120] == 1.0 and m[70, 140] == 0.0 and 0 < m[70, 130] < 1
    proc.segmenter.engine.run = lambda x: np.zeros((1, 144, 256, 1), np.float32)
    assert proc._matte(frame)[70, 60] == pytest.approx(0.5)  # EMA at 50 %: half-way


def test_aggregate_medians_spreads_and_ratios():
    def row(name, fps, p50):
        return {
            "name": name,
            "engine": "e",
            "fps": fps,
            "cpu_ms_per_frame": 20.0,
            "end_to_end_ms": {"p50": p50, "p95": p50 + 1},
            "outside_inference_ms": {"p50": 2.0},
            "stages_ms": {"inference": {"p50": 5.0}},
        }

    reps = [[row("vbg@1t", f, 10.0), row("mp-lean@1t", 2 * f, 5.0)] for f in (50.0, 60.0, 70.0)]
    rows = peers.aggregate(reps)
    assert rows[0]["fps"] == {"median": 60.0, "min": 50.0, "max": 70.0}
    assert rows[1]["frame_p95"]["median"] == 6.0
    assert peers.ratios(rows) == {"mp-lean@1t": pytest.approx(0.5)}
    report = {
        "machine": {"cpu": "Test CPU", "usable_cores": 2, "load_average_1m": 0.5},
        "config": {
            "input_size": "1280x720",
            "model": "m.json",
            "engine": "openvino",
            "input": "clip.mp4",
            "frames": 10,
            "warmup": 1,
            "block": 5,
            "repeats": 3,
            "ann": "test.json",
        },
        "fps_ratios": peers.ratios(rows),
        "results": rows,
        "quality": {
            "vbg": {
                "raw": {"images": 3, "iou": 0.9, "dice": 0.95, "pixel_acc": 0.97},
                "pipeline": {"iou": 0.91},
            }
        },
    }
    md = peers.markdown(report)
    assert "| mp-lean@1t | 120.0 (100.0-140.0) |" in md and "| 0.50 |" in md
    assert "| vbg | 0.9000 | 0.9100 |" in md and "Test CPU" in md


@pytest.mark.skipif(
    not (peers.DEFAULT_CACHE.expanduser() / peers.MODEL_FILE).is_file(),
    reason="peer model not cached (python -m benchmarks.peers fetches it)",
)
def test_cached_real_model_finds_the_person(sample_clip):
    pytest.importorskip("ai_edge_litert")
    from vbg.bench import load_frames

    (frame,), _ = load_frames(sample_clip, 1)
    seg = peers.MediaPipeSegmenter(peers.DEFAULT_CACHE.expanduser() / peers.MODEL_FILE)
    prob = seg(frame)
    assert prob.shape == (144, 256) and prob.min() >= 0.0 and prob.max() <= 1.0
    assert prob[60:100, 110:150].mean() > 0.8  # the speaker, centre of the frame
    assert prob[:15, :15].mean() < 0.2  # the room, top-left corner
