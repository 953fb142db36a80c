"""Sources: real files decoded with PyAV, still images, and the live (threaded) sources.

There is no camera on a CI machine, so CameraSource's thread/handoff/reconnect logic runs on
an injected fake capture; everything else reads real files written here with real codecs.
"""

from __future__ import annotations

import math
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vbg import VbgError
from vbg.sources import (
    CameraSource,
    Frame,
    ImageSource,
    LatestFrame,
    PacedFileSource,
    VideoFileSource,
    open_input,
    parse_camera_spec,
)

W, H, FPS, N = 160, 120, 24, 48
SQ = 24  # side of the moving square


def square_x(i: int, width: int = W) -> int:
    """Left edge of the square in frame i (moves 2 px per frame)."""
    return (2 * i) % (width - SQ)


def draw_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """Grey background, a pure-red (BGR 0,0,255) square moving right: position encodes i."""
    img = np.full((height, width, 3), 96, np.uint8)
    x = square_x(i, width)
    img[40 : 40 + SQ, x : x + SQ] = (0, 0, 255)
    return img


def make_clip(
    path: Path,
    n: int = N,
    fps: int = FPS,
    size: tuple[int, int] = (W, H),
    audio: bool = True,
) -> Path:
    """An H.264 clip (moving square) with, optionally, an AAC 440 Hz sine as long as the video."""
    width, height = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "18"}
        aus = None
        if audio:
            aus = out.add_stream("aac", rate=44100)
            aus.layout = "mono"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="bgr24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            sr, total = 44100, round(44100 * n / fps)
            t = np.arange(total, dtype=np.float32) / sr
            wave = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = wave[start : start + 1024][None, :]
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="mono"
                )
                af.sample_rate, af.pts = sr, start
                for p in aus.encode(af):
                    out.mux(p)
            for p in aus.encode(None):
                out.mux(p)
    return path


def square_found_at(img: np.ndarray, i: int) -> bool:
    """The red square of frame i is where it should be (lossy codec: loose thresholds)."""
    x = square_x(i, img.shape[1])
    inside = img[44 : 40 + SQ - 4, x + 4 : x + SQ - 4].reshape(-1, 3).mean(0)
    # BGR: red square -> high R (channel 2), low B.
    return bool(inside[2] > 200 and inside[0] < 60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


@pytest.fixture(scope="module")
def clip_noaudio(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "silent.mp4", audio=False)


# --------------------------------------------------------------------------- VideoFileSource


def test_video_file_source_properties(clip: Path) -> None:
    src = VideoFileSource(clip)
    assert (src.width, src.height) == (W, H)
    assert src.fps == FPS and isinstance(src.fps, Fraction)
    assert src.frame_count == N == len(src)
    assert src.duration == pytest.approx(N / FPS, abs=1 / FPS)
    assert src.has_audio


def test_video_file_source_decodes_every_frame_with_pts(clip: Path) -> None:
    frames = list(VideoFileSource(clip))
    assert len(frames) == N
    assert [f.index for f in frames] == list(range(N))
    assert [f.pts for f in frames] == pytest.approx([i / FPS for i in range(N)], abs=1e-3)
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (H, W, 3)
        assert f.image.flags.c_contiguous
    # Decoded as BGR and in order: the red square is where frame i drew it.
    assert all(square_found_at(f.image, f.index) for f in frames)
    assert frames[-1].t_capture >= frames[0].t_capture


def test_video_file_source_iterates_again_from_the_start(clip_noaudio: Path) -> None:
    src = VideoFileSource(clip_noaudio)
    assert not src.has_audio
    first = [f.pts for f in src]
    second = [f.pts for f in src]
    assert len(first) == N and first == second


def test_frame_count_is_counted_when_the_container_has_none(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mkv", n=30, audio=False)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # matroska stores no frame count
    src = VideoFileSource(path)
    assert src.frame_count == 30
    assert sum(1 for _ in src) == 30


def test_real_sample_clip(sample_clip: Path) -> None:
    src = VideoFileSource(sample_clip)
    assert (src.width, src.height) == (960, 540)
    assert src.frame_count == 72 and src.fps == 30 and src.has_audio
    n = 0
    for f in src:
        assert f.image.shape == (540, 960, 3)
        n += 1
    assert n == 72


def _one_line_error(path: Path, match: str) -> VbgError:
    with pytest.raises(VbgError, match=match) as ei:
        open_input(path)
    assert "\n" not in str(ei.value)
    return ei.value


def test_missing_input(tmp_path: Path) -> None:
    _one_line_error(tmp_path / "nope.mp4", "not found")
    with pytest.raises(VbgError, match="not found"):
        VideoFileSource(tmp_path / "nope.mp4")


def test_garbage_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    _one_line_error(bad, "garbage.mp4")


def test_truncated_file(tmp_path: Path, clip: Path) -> None:
    data = clip.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])  # PyAV writes the index (moov) last: now it's gone
    _one_line_error(bad, "cannot read video")


def test_text_file_and_audio_only_file(tmp_path: Path) -> None:
    txt = tmp_path / "notes.mp4"
    txt.write_text("this is not a video\n" * 50)
    _one_line_error(txt, "cannot read video")
    m4a = tmp_path / "sound.m4a"
    with av.open(str(m4a), "w") as out:
        s = out.add_stream("aac", rate=44100)
        s.layout = "mono"
        af = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        af.sample_rate, af.pts = 44100, 0
        for p in list(s.encode(af)) + list(s.encode(None)):
            out.mux(p)
    _one_line_error(m4a, "no video stream")


# --------------------------------------------------------------------------- ImageSource


def test_image_source_png_and_jpg(tmp_path: Path) -> None:
    img = draw_frame(5)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "a.JPG"), img)
    png = open_input(tmp_path / "a.png")
    assert isinstance(png, ImageSource)
    frames = list(png)
    assert len(frames) == 1 and frames[0].index == 0
    np.testing.assert_array_equal(frames[0].image, img)  # png is lossless
    jpg = open_input(tmp_path / "a.JPG")
    assert isinstance(jpg, ImageSource) and (jpg.width, jpg.height) == (W, H)
    assert square_found_at(next(iter(jpg)).image, 5)


def test_image_source_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(VbgError, match="cannot read image"):
        open_input(bad)


def test_open_input_probes_video_without_known_extension(tmp_path: Path, clip: Path) -> None:
    odd = tmp_path / "video.bin"
    odd.write_bytes(clip.read_bytes())
    src = open_input(odd)
    assert isinstance(src, VideoFileSource) and src.frame_count == N


# --------------------------------------------------------------------------- LatestFrame


def test_latest_frame_slot_keeps_newest_and_counts_drops() -> None:
    slot = LatestFrame()
    for i in range(5):
        slot.put(Frame(np.zeros((2, 2, 3), np.uint8), i, None, 0.0))
    got = slot.take(0)
    assert got is not None and got.index == 4
    assert slot.dropped == 4
    assert slot.take(0.01) is None
    # A waiting reader is woken by close().
    threading.Timer(0.05, slot.close).start()
    t0 = time.perf_counter()
    assert slot.take(5.0) is None
    assert time.perf_counter() - t0 < 2.0


# --------------------------------------------------------------------------- CameraSource


class FakeCapture:
    """Stands in for cv2.VideoCapture: frames whose pixels hold their index, produced every
    ``period`` seconds; fails every read after ``fail_after`` frames."""

    def __init__(self, opened: bool = True, period: float = 0.002, fail_after: int | None = None):
        self.opened = opened
        self.period = period
        self.fail_after = fail_after
        self.props: dict[int, float] = {}
        self.n = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self):
        time.sleep(self.period)
        if self.fail_after is not None and self.n >= self.fail_after:
            return False, None
        img = np.zeros((H, W, 3), np.uint8)
        img[..., 0] = self.n % 256
        img[:, : W // 2, 1] = 200  # left half marked, to see mirroring
        self.n += 1
        return True, img

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        defaults = {cv2.CAP_PROP_FRAME_WIDTH: W, cv2.CAP_PROP_FRAME_HEIGHT: H, cv2.CAP_PROP_FPS: 30}
        return float(defaults.get(prop, 0))

    def release(self) -> None:
        self.released = True


def test_parse_camera_spec() -> None:
    assert parse_camera_spec("0") == 0 and parse_camera_spec(2) == 2
    assert parse_camera_spec("/dev/video2") == "/dev/video2"
    assert parse_camera_spec("rtsp://host/stream") == "rtsp://host/stream"


def test_camera_latest_frame_wins_and_drops_are_counted() -> None:
    caps: list[FakeCapture] = []

    def factory(spec):
        caps.append(FakeCapture(period=0.002))
        return caps[-1]

    with CameraSource(3, size=(640, 360), fps=60, capture_factory=factory) as cam:
        assert caps[0].props[cv2.CAP_PROP_FRAME_WIDTH] == 640
        assert caps[0].props[cv2.CAP_PROP_FRAME_HEIGHT] == 360
        assert caps[0].props[cv2.CAP_PROP_FPS] == 60
        assert (cam.width, cam.height) == (W, H)
        first = cam.read(timeout=2.0)
        assert first is not None
        time.sleep(0.2)  # a slow consumer: ~100 frames are captured meanwhile
        second = cam.read(timeout=2.0)
        assert second is not None
        assert second.index > first.index + 5  # the newest, not the next queued one
        assert int(second.image[0, 0, 0]) == second.index % 256
        assert second.t_capture > first.t_capture
        assert cam.dropped >= 5
        indices = [f.index for f in (cam.read(2.0) for _ in range(5)) if f is not None]
        assert indices == sorted(set(indices)) and indices[0] > second.index
    assert caps[0].released and not cam.running


def test_camera_mirror_and_toggle() -> None:
    with CameraSource(0, mirror=True, capture_factory=lambda s: FakeCapture()) as cam:
        f = cam.read(2.0)
        assert f is not None and f.image[0, -1, 1] == 200 and f.image[0, 0, 1] == 0
        cam.mirror = False
        time.sleep(0.02)
        cam.read(2.0)  # may still be a frame captured before the toggle
        f = cam.read(2.0)
        assert f is not None and f.image[0, 0, 1] == 200 and f.image[0, -1, 1] == 0


def test_camera_open_failure_names_the_camera() -> None:
    with pytest.raises(VbgError, match="camera 7"):
        CameraSource(7, capture_factory=lambda s: FakeCapture(opened=False)).start()
    with pytest.raises(VbgError, match="/dev/video9"):
        CameraSource("/dev/video9").start()  # real cv2.VideoCapture: there is no such device


def test_camera_reconnects_after_read_failures() -> None:
    caps: list[FakeCapture] = []

    def factory(spec):
        caps.append(FakeCapture(fail_after=10))
        return caps[-1]

    cam = CameraSource(0, capture_factory=factory, fail_threshold=3, backoff=(0.01, 0.05))
    with cam:
        deadline = time.perf_counter() + 5.0
        while cam.reconnects < 2 and time.perf_counter() < deadline:
            cam.read(0.5)
        assert cam.reconnects >= 2
        assert cam.read(2.0) is not None  # frames flow again after reconnecting
    assert len(caps) >= 3 and all(c.released for c in caps)


def test_camera_start_stop_idempotent_and_read_after_stop() -> None:
    cam = CameraSource(0, capture_factory=lambda s: FakeCapture())
    cam.start()
    thread = cam._thread
    cam.start()
    assert cam._thread is thread and cam.running
    cam.stop()
    cam.stop()
    assert not cam.running
    t0 = time.perf_counter()
    cam.read(5.0)  # may hand out the one frame left in the slot
    assert cam.read(5.0) is None  # ... but never waits, and stop() is not undone by read()
    assert not cam.running
    assert time.perf_counter() - t0 < 2.0


def test_camera_read_that_raises_is_camera_loss_and_recovers() -> None:
    """A driver error inside read() is an outage: the capture is reopened, frames resume."""
    caps: list[FakeCapture] = []

    class Flaky(FakeCapture):
        def read(self):
            if self.n >= 5:
                raise RuntimeError("driver exploded")
            return super().read()

    def factory(spec):
        caps.append(Flaky())
        return caps[-1]

    cam = CameraSource(0, capture_factory=factory, backoff=(0.01, 0.05))
    with cam:
        deadline = time.perf_counter() + 5.0
        while cam.reconnects < 2 and time.perf_counter() < deadline:
            cam.read(0.5)
        assert cam.running and cam.reconnects >= 2 and cam.outages >= 2
        assert cam.read(2.0) is not None
    assert all(c.released for c in caps)


def test_camera_stalled_read_is_abandoned_and_reopened() -> None:
    """A read that blocks (a stalled driver, a dead stream) is given up after stall_s."""
    caps: list[FakeCapture] = []

    class Staller(FakeCapture):
        def read(self):
            if len(caps) == 1 and self.n >= 3:
                time.sleep(1.0)  # stuck (long past stall_s)
            return super().read()

    def factory(spec):
        caps.append(Staller())
        return caps[-1]

    with CameraSource(0, capture_factory=factory, stall_s=0.2, backoff=(0.01, 0.05)) as cam:
        deadline = time.perf_counter() + 5.0
        while cam.reconnects < 1 and time.perf_counter() < deadline:
            cam.read(0.2)
        assert cam.reconnects == 1 and len(caps) == 2
        assert cam.read(1.0) is not None


def test_camera_that_keeps_failing_backs_off_quietly(caplog) -> None:
    """A device that opens but never delivers is retried with backoff, not in a busy loop,
    and warned about once at most."""
    opens: list[float] = []

    def factory(spec):
        opens.append(time.perf_counter())
        return FakeCapture(fail_after=0, period=0.0)

    with CameraSource(0, capture_factory=factory, fail_threshold=1, backoff=(0.02, 0.1)) as cam:
        assert cam.read(0.6) is None and cam.running
    assert 3 <= len(opens) <= 12
    assert sum("reconnecting" in r.message for r in caplog.records) <= 1


# --------------------------------------------------------------------------- PacedFileSource


def test_paced_source_plays_at_the_file_rate(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "short.mp4", n=12, audio=False)
    src = PacedFileSource(path)
    assert src.fps == FPS
    got: list[Frame] = []
    with src:
        while (f := src.read(2.0)) is not None:
            got.append(f)
    assert src.finished
    assert len(got) + src.dropped == 12
    assert len(got) >= 9  # a reader that keeps up loses (almost) nothing
    span = got[-1].t_capture - got[0].t_capture
    expected = (got[-1].index - got[0].index) / FPS
    assert 0.5 * expected < span < 1.5 * expected
    assert all(square_found_at(f.image, f.index) for f in got)


def test_paced_source_drops_stale_frames_for_a_slow_reader(clip_noaudio: Path) -> None:
    src = PacedFileSource(clip_noaudio, fps=96)  # 48 frames in 0.5 s
    got: list[Frame] = []
    with src:
        while (f := src.read(2.0)) is not None:
            got.append(f)
            time.sleep(0.1)  # ~10 frames arrive while we "process" one
    indices = [f.index for f in got]
    assert indices == sorted(set(indices))
    assert src.dropped >= 20 and len(got) <= 15
    assert len(got) + src.dropped == N
    assert indices[-1] == N - 1  # the last frame is still handed out at the end


def test_paced_source_loops(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "short.mp4", n=12, audio=False)
    got: list[Frame] = []
    with PacedFileSource(path, fps=200, loop=True) as src:
        while len(got) < 30:
            f = src.read(2.0)
            assert f is not None
            got.append(f)
    assert got[-1].index >= 29
    pts = [f.pts for f in got]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))  # pts keep growing across loops
    assert max(pts) > 12 / FPS


def test_camera_source_reads_through_real_cv2_capture(clip_noaudio: Path) -> None:
    """The default capture (cv2.VideoCapture) also opens files/URLs: read real frames."""
    with CameraSource(str(clip_noaudio), size=(W, H), fps=FPS) as cam:
        assert (cam.width, cam.height) == (W, H)
        f = cam.read(timeout=5.0)
        assert f is not None and f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert square_found_at(f.image, f.index % N)  # after EOF it reopens at frame 0
