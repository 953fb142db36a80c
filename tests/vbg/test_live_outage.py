"""Camera loss through the real live loop: a fake camera that raises, stalls, vanishes and
comes back (at another size), read by CameraSource, run by run_live, into a virtual camera
whose backend records when each frame arrived (no /dev/video* exists on a CI machine)."""

from __future__ import annotations

import time

import cv2
import numpy as np
from pyvirtualcam.camera import register_backend

from tests.vbg.test_pipeline import ConstEngine, fake_processor
from vbg.pipeline import LiveOptions, run_live
from vbg.sources import CameraSource

H, W = 48, 64
FPS = 20.0
REAL = 200  # pixel value of real camera frames (the fake engine passes them through)
BACKEND = "vbg-test-timeline"


class TimelineBackend:
    """A pyvirtualcam backend that records (time, first pixel) of every frame sent."""

    sent: list[tuple[float, int]] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw) -> None:
        self.width, self.height = width, height
        TimelineBackend.sent = []

    def send(self, frame: np.ndarray) -> None:
        img = frame.reshape(self.height, self.width, 3)
        TimelineBackend.sent.append((time.perf_counter(), int(img[self.height // 2, 5, 0])))

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "timeline"

    def native_fourcc(self):
        return None


register_backend(BACKEND, TimelineBackend)


class World:
    """The fake camera's script, by time since start: fine, read raises, read blocks (a
    stall), device gone, back at twice the size."""

    RAISE = (0.6, 0.7)
    STALL = (1.0, 1.8)
    GONE = (2.2, 3.4)

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.opens = 0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def within(self, span: tuple[float, float]) -> bool:
        return span[0] <= self.now() < span[1]


class ScriptedCapture:
    def __init__(self, world: World) -> None:
        self.world = world
        self.opened = not world.within(World.GONE)
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self):
        w = self.world
        time.sleep(1 / FPS)
        if w.within(World.RAISE):
            raise cv2.error("VIDIOC_DQBUF: No such device")
        while w.within(World.STALL):
            time.sleep(0.05)  # blocked inside the driver
        if w.within(World.GONE):
            return False, None
        big = w.now() >= World.GONE[1]  # came back at another size
        return True, np.full((H * 2, W * 2, 3) if big else (H, W, 3), REAL, np.uint8)

    def set(self, prop, value) -> bool:
        return True

    def get(self, prop) -> float:
        return {
            cv2.CAP_PROP_FRAME_WIDTH: W,
            cv2.CAP_PROP_FRAME_HEIGHT: H,
            cv2.CAP_PROP_FPS: FPS,
        }.get(prop, 0.0)

    def release(self) -> None:
        self.released = True


class QuitAt:
    """An action source (like the preview's hotkeys or a control socket) that quits."""

    def __init__(self, world: World, t: float) -> None:
        self.world, self.t = world, t

    def poll_actions(self) -> list[str]:
        return ["quit"] if self.world.now() >= self.t else []


def test_outage_keeps_the_virtual_camera_fed_and_real_frames_resume(tiny_card, caplog):
    world = World()
    caps: list[ScriptedCapture] = []

    def factory(spec):
        world.opens += 1
        caps.append(ScriptedCapture(world))
        return caps[-1]

    cam = CameraSource(0, size=(W, H), fps=FPS, capture_factory=factory, stall_s=0.4)
    opts = LiveOptions(
        outputs=["vcam"],
        vcam_backend=BACKEND,
        backgrounds=["color:#00ff00"],
        fps=FPS,
        notice_after_s=0.3,
        plain_after_s=0.8,
        action_sources=[QuitAt(world, 4.2)],
    )
    proc = fake_processor(tiny_card, ConstEngine(+20.0))  # all person: output = camera frame
    res = run_live(cam, processor=proc, options=opts)

    assert res.stopped_by == "quit"
    times = np.array([t for t, _ in TimelineBackend.sent])
    values = [v for _, v in TimelineBackend.sent]
    gaps = np.diff(times)
    period = 1 / FPS
    print(f"sent {len(values)}, longest gap {gaps.max() * 1000:.0f} ms, filler {res.filler}")
    assert gaps.max() <= 2 * period, f"longest gap {gaps.max() * 1000:.0f} ms"
    rel = times - world.t0
    # Real frames before the faults, and again after the device came back (at 2x size,
    # scaled to the output size: pyvirtualcam would reject another shape).
    assert any(v == REAL for t, v in zip(rel, values, strict=True) if t < World.RAISE[0])
    assert sum(v == REAL for t, v in zip(rel, values, strict=True) if t > World.GONE[1]) >= 5
    during = [
        v for t, v in zip(rel, values, strict=True) if World.GONE[0] + 0.9 < t < World.GONE[1]
    ]
    assert during and all(v != REAL for v in during)  # a stand-in, not a frozen picture
    assert any(0 < v < REAL for v in values)  # the dimmed last picture ...
    assert any(v == 0 for v in values)  # ... then the plain (green: blue channel 0) background
    assert res.filler > 0 and cam.reconnects >= 2
    assert all(c.released for c in caps[:-1])
    # The rate held for the whole run, outages included.
    assert len(values) >= 0.8 * FPS * (times[-1] - times[0])


def test_live_loop_adapts_to_a_size_change(tiny_card):
    """A source whose frames change size mid-run is scaled, never crashes the loop."""
    from tests.vbg.test_pipeline import FakeSource, RecordingSink

    class Resizing(FakeSource):
        def read(self, timeout=1.0):
            f = super().read(timeout)
            if f is not None and self.i > 3:
                f.image = cv2.resize(f.image, (f.image.shape[1] * 2, f.image.shape[0] * 2))
            return f

    sink = RecordingSink()
    proc = fake_processor(tiny_card, ConstEngine(+20.0))
    res = run_live(Resizing(8), outputs=[sink], processor=proc)
    assert res.frames == 8 and {f.shape for f in sink.frames} == {(72, 96, 3)}


def test_output_size_scales_every_frame(tiny_card):
    size = (64, 48)
    from tests.vbg.test_pipeline import FakeSource, RecordingSink

    sink = RecordingSink()
    proc = fake_processor(tiny_card, ConstEngine(+20.0))
    run_live(FakeSource(3), processor=proc, options=LiveOptions(outputs=[sink], output_size=size))
    assert {f.shape for f in sink.frames} == {(size[1], size[0], 3)}


def test_a_file_as_the_camera_plays_paced_at_the_output_size_and_ends(tiny_card, tmp_path, caplog):
    """`vbg run --camera FILE`: real time, --size honoured, the end is an end (not an
    outage: no reconnect messages, no filler)."""
    from tests.vbg.test_pipeline import RecordingSink
    from tests.vbg.test_process_e2e import make_clip

    caplog.set_level("INFO", logger="vbg")
    clip = make_clip(tmp_path / "cam.mp4", frames=15, fps=30, audio=False)
    sink = RecordingSink()
    proc = fake_processor(tiny_card, ConstEngine(+20.0))
    t0 = time.perf_counter()
    res = run_live(
        str(clip), processor=proc, options=LiveOptions(outputs=[sink], output_size=(48, 32))
    )
    took = time.perf_counter() - t0
    assert res.stopped_by == "end" and res.filler == 0
    assert res.frames + res.dropped == 15 and res.frames >= 10
    assert took >= 0.4  # paced: 15 frames at 30 fps, not decoded as fast as possible
    assert {f.shape for f in sink.frames} == {(32, 48, 3)}
    assert not any("reconnect" in r.message for r in caplog.records)
    assert any("reached the end" in r.message for r in caplog.records)


def test_no_opencv_warnings_when_no_camera_opens(capfd):
    import pytest

    from vbg import VbgError

    with pytest.raises(VbgError, match="cannot open camera"):
        CameraSource("/dev/video9").start()
    assert "WARN" not in capfd.readouterr().err
