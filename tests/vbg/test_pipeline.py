"""FrameProcessor and the live loop, on the tiny model and on a fake engine whose output is
known, with fake and file sources and a recording sink (no camera, no display)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from vbg import VbgError
from vbg.backgrounds import BackgroundSpec
from vbg.card import load_card
from vbg.pipeline import (
    GLASS_TO_GLASS,
    FrameProcessor,
    Progress,
    build_processor,
    run_live,
)
from vbg.refine import Refiner
from vbg.segmenter import Segmenter
from vbg.sources import Frame
from vbg.temporal import TemporalConfig, TemporalSmoother

H, W = 72, 96
GREEN = "color:#00ff00"


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


class ConstEngine:
    """An engine whose logits are a constant (or a fixed map): known probabilities."""

    name = "const"

    def __init__(self, logit: float = 20.0) -> None:
        self.logit = logit
        self.calls = 0
        self.closed = False

    def run(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full((1, 1, *x.shape[2:]), self.logit, np.float32)

    def close(self) -> None:
        self.closed = True


class LeftHalfEngine(ConstEngine):
    """Person on the left half of the model input: shows whether TTA mirrors back."""

    def run(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        h, w = x.shape[2:]
        y = np.full((1, 1, h, w), -20.0, np.float32)
        y[..., : w // 2] = 20.0
        return y


def fake_processor(tiny_card, engine, *, background=GREEN, tta=False) -> FrameProcessor:
    from vbg.backgrounds import parse_background

    card = load_card(tiny_card)
    return FrameProcessor(
        segmenter=Segmenter(card, engine),
        smoother=TemporalSmoother(TemporalConfig(ema=1.0, open_px=0, close_px=0)),
        refiner=Refiner(feather_px=0),
        background=parse_background(background),
        tta=tta,
    )


# --------------------------------------------------------------------------- FrameProcessor


@pytest.fixture(scope="module")
def proc(tiny_card):
    p = build_processor(tiny_card, engine="onnxruntime", threads=1, background=GREEN)
    yield p
    p.close()


def test_process_shape_dtype_and_every_stage_timed(proc):
    proc.timer.reset()
    out = proc.process(frame())
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    stages = proc.timer.end_frame()
    for name in ("preprocess", "inference", "smoothing", "compositing"):
        assert stages[name] >= 0.0, name
    assert proc.engine_name == "onnxruntime"


def test_mask_is_alpha_at_frame_size(proc):
    alpha = proc.mask(frame(1))
    assert alpha.shape == (H, W) and alpha.dtype == np.uint8


def test_other_frame_sizes_work(proc):
    assert proc.process(np.zeros((50, 30, 3), np.uint8)).shape == (50, 30, 3)
    assert proc.mask(np.zeros((120, 200, 3), np.uint8)).shape == (120, 200)


def test_reset_forgets_temporal_state(proc):
    proc.mask(frame(2))
    assert proc.smoother.state is not None
    proc.reset()
    assert proc.smoother.state is None and proc.smoother.frames == 0


def test_build_processor_with_known_size_fits_background_now(tiny_card):
    p = build_processor(
        tiny_card, engine="onnxruntime", threads=1, background="blur", size=(H, W), tta=True
    )
    try:
        assert p.compositor is not None and p.compositor.size == (H, W)
        assert p.process(frame()).shape == (H, W, 3)
    finally:
        p.close()


def test_build_processor_errors(tiny_card, tmp_path):
    with pytest.raises(VbgError, match="unknown background 'moon'"):
        build_processor(tiny_card, engine="onnxruntime", background="moon")
    with pytest.raises(VbgError, match="unknown engine 'warp9'"):
        build_processor(tiny_card, engine="warp9")
    with pytest.raises(VbgError, match="does not exist"):
        build_processor(tmp_path / "missing.json", engine="onnxruntime")
    with pytest.raises(VbgError, match="feather"):
        build_processor(tiny_card, engine="onnxruntime", feather_px=-1)


def test_compositing_follows_the_mask(tiny_card):
    img = frame(3)
    person = fake_processor(tiny_card, ConstEngine(+20.0))
    assert np.array_equal(person.process(img), img)  # all person: the frame itself
    nobody = fake_processor(tiny_card, ConstEngine(-20.0))
    out = nobody.process(img)
    assert (out == np.array([0, 255, 0], np.uint8)).all()  # all background: green
    nobody.set_background(BackgroundSpec(kind="color", color_bgr=(255, 0, 0)))
    assert (nobody.process(img) == np.array([255, 0, 0], np.uint8)).all()
    nobody.set_background("color:#ff0000")  # red: (0, 0, 255) in BGR
    assert (nobody.process(img) == np.array([0, 0, 255], np.uint8)).all()


def test_tta_mirrors_the_second_pass_back(tiny_card):
    eng = LeftHalfEngine()
    p = fake_processor(tiny_card, eng, tta=True)
    prob = p.probability(frame())
    assert eng.calls == 2
    # left half says person in the first pass, the mirrored pass says right half:
    # averaged, everything is 0.5
    np.testing.assert_allclose(prob, 0.5, atol=1e-6)
    p.tta = False
    prob = p.probability(frame())
    assert prob[:, 0].min() > 0.99 and prob[:, -1].max() < 0.01


def test_close_closes_the_engine(tiny_card):
    eng = ConstEngine()
    fake_processor(tiny_card, eng).close()
    assert eng.closed


# --------------------------------------------------------------------------- live loop


class RecordingSink:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.pts: list[float | None] = []
        self.closed = 0

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        self.frames.append(frame_bgr.copy())
        self.pts.append(pts)

    def close(self) -> None:
        self.closed += 1


class FakeSource:
    """Live-source stand-in: frames on demand, None at the end (running False)."""

    def __init__(self, n: int, *, interrupt_at: int | None = None, fps: float = 30.0) -> None:
        self.n, self.i = n, 0
        self.interrupt_at = interrupt_at
        self.fps = fps
        self.stopped = 0
        self.running = True
        self.mirror = False
        self.dropped = 0

    def read(self, timeout: float | None = 1.0) -> Frame | None:
        if self.interrupt_at is not None and self.i == self.interrupt_at:
            raise KeyboardInterrupt
        if self.i >= self.n:
            self.running = False
            return None
        img = np.full((H, W, 3), self.i % 256, np.uint8)
        f = Frame(image=img, index=self.i, pts=None, t_capture=time.perf_counter())
        self.i += 1
        return f

    def stop(self) -> None:
        self.stopped += 1
        self.running = False


class FakePreview(RecordingSink):
    """A preview that 'presses' keys: actions scripted per frame written."""

    def __init__(self, script: dict[int, list[str]]) -> None:
        super().__init__()
        self.script = script
        self.show_overlay = False
        self.status: list[str] = []

    def poll_actions(self) -> list[str]:
        return self.script.pop(len(self.frames), [])

    def set_status(self, text: str) -> None:
        self.status.append(text)


def test_run_live_paced_file_source_records_latency(tiny_card, tmp_path):
    from tests.vbg.test_process_e2e import make_clip
    from vbg.sources import PacedFileSource

    clip = make_clip(tmp_path / "clip.mp4", frames=12, fps=30, audio=False)
    sink = RecordingSink()
    p = build_processor(tiny_card, engine="onnxruntime", threads=1, background=GREEN)
    try:
        res = run_live(PacedFileSource(clip), outputs=[sink], processor=p, max_frames=5)
    finally:
        p.close()
    assert res.stopped_by == "max_frames" and res.frames == 5
    assert len(sink.frames) == 5 and sink.closed == 1
    assert all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in sink.frames)
    assert sink.pts == sorted(sink.pts)
    g2g = res.timer.samples[GLASS_TO_GLASS]
    assert len(g2g) == 5 and min(g2g) > 0
    summary = res.timer.summary()
    for stage in ("capture", "preprocess", "inference", "smoothing", "compositing", "output"):
        assert summary[stage]["n"] == 5, stage
    # glass-to-glass is a separate series, not a stage inside "total"
    assert summary["total"]["n"] == 5


def test_run_live_stops_at_source_end_and_stops_source(tiny_card):
    src, sink = FakeSource(4), RecordingSink()
    p = fake_processor(tiny_card, ConstEngine(+20.0))
    res = run_live(src, outputs=[sink], processor=p, backgrounds=[GREEN])
    assert res.stopped_by == "end" and res.frames == 4 and src.stopped == 1
    # an all-person mask passes the frames through unchanged, in order
    assert [int(f[0, 0, 0]) for f in sink.frames] == [0, 1, 2, 3]


def test_run_live_hotkeys_cycle_backgrounds_mirror_and_quit(tiny_card):
    src = FakeSource(100)
    preview = FakePreview(
        {
            1: ["next_background"],
            2: ["blur"],
            3: ["blur", "mirror"],
            4: ["prev_background"],
            5: ["quit"],
        }
    )
    p = fake_processor(tiny_card, ConstEngine(-20.0))  # all background: output = background
    res = run_live(
        src,
        outputs=[preview],
        processor=p,
        backgrounds=["color:#ff0000", "color:#0000ff"],
        show_fps=True,
    )
    assert res.stopped_by == "quit" and res.frames == 5
    colours = [tuple(int(v) for v in f[10, 10]) for f in preview.frames]
    assert colours[0] == (0, 0, 255)  # red (BGR)
    assert colours[1] == (255, 0, 0)  # next: blue
    assert colours[2] == (2, 2, 2)  # blur: the blurred frame itself (uniform, value 2)
    assert colours[3] == (255, 0, 0)  # blur off: back to blue
    assert colours[4] == (0, 0, 255)  # previous: red
    assert src.mirror is True
    assert preview.show_overlay is True and "fps" in preview.status[-1]


def test_run_live_ctrl_c_finalizes_the_recording(tiny_card, tmp_path):
    from vbg.sources import VideoFileSource

    out = tmp_path / "rec.mp4"
    p = fake_processor(tiny_card, ConstEngine(+20.0))
    res = run_live(FakeSource(100, interrupt_at=6), outputs=[str(out)], processor=p)
    assert res.stopped_by == "interrupt" and res.frames == 6
    assert [f.name for f in tmp_path.iterdir()] == ["rec.mp4"]  # no temporary file left
    assert VideoFileSource(out).frame_count == 6


def test_run_live_error_finalizes_the_recording(tiny_card, tmp_path):
    """A loop ending on an error keeps what was recorded (a playable file), then raises."""
    from vbg.sources import VideoFileSource

    class Broken(FakeSource):
        def read(self, timeout=1.0):
            if self.i == 3:
                raise VbgError("camera unplugged for good")
            return super().read(timeout)

    out = tmp_path / "rec.mp4"
    p = fake_processor(tiny_card, ConstEngine(+20.0))
    with pytest.raises(VbgError, match="unplugged"):
        run_live(Broken(10), outputs=[str(out)], processor=p)
    assert [f.name for f in tmp_path.iterdir()] == ["rec.mp4"]
    assert VideoFileSource(out).frame_count == 3


def test_run_live_checks_outputs_and_backgrounds_first(tiny_card, tmp_path):
    src = FakeSource(3)
    p = fake_processor(tiny_card, ConstEngine())
    with pytest.raises(VbgError, match="unknown output 'zoom'"):
        run_live(src, outputs=["zoom"], processor=p)
    with pytest.raises(VbgError, match="unknown background 'moon'"):
        run_live(src, outputs=[RecordingSink()], processor=p, backgrounds=["moon"])
    with pytest.raises(VbgError, match="output folder does not exist"):
        run_live(src, outputs=[str(tmp_path / "no" / "x.mp4")], processor=p)
    assert src.i == 0  # the source was never read


def test_run_live_show_fps_without_preview_draws_on_output(tiny_card):
    sink = RecordingSink()
    p = fake_processor(tiny_card, ConstEngine(-20.0))
    run_live(
        FakeSource(3), outputs=[sink], processor=p, backgrounds=["color:#000000"], show_fps=True
    )
    assert sink.frames[-1].max() > 0  # white text on the black background


# --------------------------------------------------------------------------- progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal():
    quiet = io.StringIO()
    bar = Progress(10, stream=quiet)
    for _ in range(10):
        bar.update()
    bar.close()
    assert quiet.getvalue() == ""

    tty = FakeTTY()
    bar = Progress(10, stream=tty, label="x.mp4", min_interval=0.0)
    for _ in range(10):
        bar.update()
    bar.close()
    text = tty.getvalue()
    assert "ETA" in text and "10/10" in text and "100%" in text and text.endswith("\n")
    off = FakeTTY()
    Progress(10, stream=off, enabled=False).update()
    assert off.getvalue() == ""


def test_progress_unknown_total():
    tty = FakeTTY()
    bar = Progress(None, stream=tty, min_interval=0.0)
    bar.update(3)
    assert "3 frames" in tty.getvalue()
