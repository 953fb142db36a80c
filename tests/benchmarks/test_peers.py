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


def test_ab_schedule_alternates_and_covers_the_same_frames():
    s = peers.ab_schedule(100, 25)
    assert [n for n, _, _ in s] == ["vbg", "peer", "peer", "vbg"] * 2
    for name in peers.NAMES:
        frames = [i for n, a, b in s if n == name for i in range(a, b)]
        assert frames == list(range(100))
    # A short last block still goes to both.
    assert peers.ab_schedule(30, 25)[-2:] == [("peer", 25, 30), ("vbg", 25, 30)]


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


def test_markdown_reports_the_ratio_and_iou():
    row = {
        "name": "vbg",
        "engine": "onnxruntime",
        "input_size": "1280x720",
        "fps": 60.0,
        "cpu_ms_per_frame": 20.0,
        "end_to_end_ms": {"p50": 10.0, "p95": 12.0, "p99": 14.0},
        "stages_ms": {"inference": {"p50": 5.0, "p95": 6.0}},
    }
    q = {"images": 3, "iou": 0.9, "dice": 0.95, "pixel_acc": 0.97}
    report = {
        "machine": {"cpu": "Test CPU", "usable_cores": 2, "load_average_1m": 0.5},
        "config": {
            "input_size": "1280x720",
            "model": "m.json",
            "threads": None,
            "peer_threads": 2,
            "input": "clip.mp4",
            "frames": 10,
            "warmup": 1,
            "block": 5,
            "ann": "test.json",
        },
        "fps_ratio": 2.0,
        "results": [row, {**row, "name": "peer", "fps": 30.0}],
        "quality": {"vbg": {"raw": q, "pipeline": q}, "peer": {"raw": q, "pipeline": q}},
    }
    md = peers.markdown(report)
    assert "FPS ratio vbg/peer: 2.00" in md
    assert "| vbg | 0.9000 |" in md and "Test CPU" in md


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
