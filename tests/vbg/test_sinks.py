"""Sinks: real H.264/AAC files written and read back with PyAV, atomic images, the virtual
camera through pyvirtualcam's own backend registry, and the preview's pure parts."""

from __future__ import annotations

import glob
import os
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import pyvirtualcam
from pyvirtualcam.camera import BACKENDS
from pyvirtualcam.util import encode_fourcc

from tests.vbg.test_sources import FPS, H, N, W, draw_frame, make_clip, square_found_at
from vbg import VbgError
from vbg.sinks import (
    MODPROBE_HINT,
    NO_DISPLAY_MSG,
    ImageSink,
    PreviewSink,
    VideoFileSink,
    VirtualCameraSink,
    key_action,
    overlay_text,
    partial_path,
    ppm_bytes,
)
from vbg.sources import VideoFileSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


@pytest.fixture(scope="module")
def clip_noaudio(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "silent.mp4", audio=False)


def probe(path: Path) -> dict:
    """What a player would see: codec, decoded frame count, durations, audio packets."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {
            "codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "size": (v.codec_context.width, v.codec_context.height),
            "rate": v.average_rate,
            "video_duration": float(v.duration * v.time_base),
            "frames": sum(1 for _ in c.decode(v)),
            "audio": None,
        }
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            pkts = [p for p in c.demux(a) if p.dts is not None]
            info["audio"] = {
                "codec": a.codec_context.name,
                "packets": len(pkts),
                "duration": float(a.duration * a.time_base),
                "first_pts": float(pkts[0].pts * a.time_base),
            }
    return info


def transcode(src_path: Path, out: Path, audio: bool = True, **kw) -> VideoFileSink:
    src = VideoFileSource(src_path)
    sink = VideoFileSink(
        out, src.fps, src.width, src.height, audio_from=src_path if audio else None, **kw
    )
    for f in src:
        sink.write(f.image, f.pts)
        assert sink.partial.exists() and not out.exists()  # final name only when complete
    sink.close()
    return sink


# --------------------------------------------------------------------------- VideoFileSink


def test_partial_path_is_unique_beside_the_output_and_never_an_existing_file(
    tmp_path: Path,
) -> None:
    # The old fixed name out.partial.mp4 destroyed an input called that.
    existing = tmp_path / "out.partial.mp4"
    existing.write_bytes(b"precious")
    names = {partial_path(tmp_path / "out.mp4") for _ in range(20)}
    assert len(names) == 20 and existing not in names
    for p in names:
        assert p.parent == tmp_path and p.name.startswith(".out.") and ".partial" in p.name
        assert p.suffix == ".mp4"
    assert existing.read_bytes() == b"precious"


def test_process_input_named_like_the_old_partial_name_survives(tmp_path: Path, clip: Path) -> None:
    """Regression: clip.partial.mp4 -> -o clip.mp4 truncated and deleted the input."""
    src = tmp_path / "clip.partial.mp4"
    src.write_bytes(clip.read_bytes())
    before = src.read_bytes()
    transcode(src, tmp_path / "clip.mp4")
    assert src.read_bytes() == before and (tmp_path / "clip.mp4").is_file()


def test_output_path_checks(tmp_path: Path) -> None:
    from vbg.sinks import check_output_path

    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(VbgError, match="is a folder"):
        VideoFileSink(tmp_path / "dir.mp4", FPS, W, H)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(VbgError, match="permission denied"):
            check_output_path(locked / "out.mp4")
    finally:
        locked.chmod(0o700)


def test_video_sink_keeps_frames_timing_and_audio(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "out.mp4"
    sink = transcode(clip, out)
    assert out.is_file() and not sink.partial.exists()
    assert sink.frames_written == N and sink.has_audio
    src, got = probe(clip), probe(out)
    assert got["codec"] == "h264" and got["pix_fmt"] == "yuv420p" and got["size"] == (W, H)
    assert got["frames"] == N
    assert got["rate"] == FPS
    assert got["video_duration"] == pytest.approx(src["video_duration"], abs=1 / FPS)
    assert got["audio"] is not None
    assert got["audio"]["codec"] == "aac"
    assert got["audio"]["packets"] == src["audio"]["packets"] == sink.audio_packets_written
    assert got["audio"]["duration"] == pytest.approx(src["audio"]["duration"], abs=1e-3)
    assert got["audio"]["first_pts"] == pytest.approx(src["audio"]["first_pts"], abs=1e-3)
    # The pictures survive in order (position of the square encodes the frame index).
    frames = list(VideoFileSource(out))
    assert [f.pts for f in frames] == pytest.approx([i / FPS for i in range(N)], abs=1e-3)
    assert all(square_found_at(f.image, f.index) for f in frames)


def test_video_sink_without_audio(tmp_path: Path, clip: Path, clip_noaudio: Path) -> None:
    a = tmp_path / "a.mp4"
    sink = transcode(clip_noaudio, a)  # audio_from given, but it has no audio
    assert not sink.has_audio and probe(a)["audio"] is None
    b = tmp_path / "b.mp4"
    transcode(clip, b, audio=False)  # input has audio, but none was asked for
    info = probe(b)
    assert info["audio"] is None and info["frames"] == N


def test_video_sink_real_sample_clip(tmp_path: Path, sample_clip: Path) -> None:
    out = tmp_path / "sample.mp4"
    transcode(sample_clip, out, preset="ultrafast")
    src, got = probe(sample_clip), probe(out)
    assert got["frames"] == 72 and got["size"] == (960, 540) and got["codec"] == "h264"
    assert got["video_duration"] == pytest.approx(src["video_duration"], abs=1 / 30)
    assert got["audio"]["packets"] == src["audio"]["packets"]


def test_video_sink_without_pts_spaces_frames_by_fps(tmp_path: Path) -> None:
    out = tmp_path / "gen.mp4"
    with VideoFileSink(out, 30, W, H) as sink:
        for i in range(15):
            sink.write(draw_frame(i))
    info = probe(out)
    assert info["frames"] == 15 and info["rate"] == 30
    assert info["video_duration"] == pytest.approx(0.5, abs=1 / 30)


def test_video_sink_abort_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    sink = VideoFileSink(out, FPS, W, H)
    for i in range(5):
        sink.write(draw_frame(i))
    assert sink.partial.exists()
    sink.abort()
    sink.abort()
    sink.close()  # after abort: nothing to do
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VbgError, match="after close"):
        sink.write(draw_frame(0))


def test_video_sink_exception_in_with_block_aborts(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), VideoFileSink(out, FPS, W, H) as sink:
        sink.write(draw_frame(0))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_video_sink_close_once(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    sink = VideoFileSink(out, FPS, W, H)
    sink.write(draw_frame(0))
    sink.close()
    mtime = out.stat().st_mtime_ns
    sink.close()
    sink.abort()  # after close: the finished file stays
    assert out.stat().st_mtime_ns == mtime and probe(out)["frames"] == 1


def test_video_sink_no_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "out.mp4", FPS, W, H, audio_from=None)
    with pytest.raises(VbgError, match="no frames"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_video_sink_trim_audio_for_a_shortened_run(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "short.mp4"
    sink = VideoFileSink(out, FPS, W, H, audio_from=clip)
    for f in VideoFileSource(clip):
        if f.index == 24:
            break  # e.g. Ctrl-C halfway, with "finalize what we have"
        sink.write(f.image, f.pts)
    sink.close(trim_audio=True)
    info = probe(out)
    assert info["frames"] == 24
    assert info["audio"]["duration"] == pytest.approx(1.0, abs=0.05)


def test_video_sink_frame_checks_and_odd_size(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "odd.mp4", FPS, 161, 121)
    with pytest.raises(TypeError):
        sink.write(np.zeros((121, 161, 3), np.float32))
    with pytest.raises(ValueError):
        sink.write(np.zeros((120, 160, 3), np.uint8))
    with pytest.raises(ValueError):
        sink.write(np.zeros((121, 161, 4), np.uint8))
    for i in range(3):
        sink.write(draw_frame(i, 161, 121))
    sink.close()
    info = probe(tmp_path / "odd.mp4")
    assert info["size"] == (160, 120) and info["frames"] == 3  # yuv420p: odd edge cropped


def test_video_sink_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(VbgError, match="folder does not exist"):
        VideoFileSink(tmp_path / "missing" / "out.mp4", FPS, W, H)
    with pytest.raises(ValueError, match="crf"):
        VideoFileSink(tmp_path / "out.mp4", FPS, W, H, crf=99)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00junk" * 1000)
    with pytest.raises(VbgError, match="cannot read audio"):
        VideoFileSink(tmp_path / "out.mp4", FPS, W, H, audio_from=garbage)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.mp4"]


# --------------------------------------------------------------------------- ImageSink


def test_image_sink_png_roundtrip_and_atomic(tmp_path: Path) -> None:
    out = tmp_path / "frame.png"
    sink = ImageSink(out)
    img = draw_frame(3)
    sink.write(img)
    np.testing.assert_array_equal(cv2.imread(str(out)), img)
    sink.write(draw_frame(9))  # overwrites: the last frame wins
    sink.close()
    np.testing.assert_array_equal(cv2.imread(str(out)), draw_frame(9))
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]  # no temp file left behind
    jpg = tmp_path / "frame.jpg"
    with ImageSink(jpg) as s:
        s.write(img)
    assert square_found_at(cv2.imread(str(jpg)), 3)


def test_image_sink_errors(tmp_path: Path) -> None:
    with pytest.raises(VbgError, match="use one of"):
        ImageSink(tmp_path / "frame.mp3")
    with pytest.raises(VbgError, match="folder does not exist"):
        ImageSink(tmp_path / "nope" / "a.png")
    sink = ImageSink(tmp_path / "a.png")
    with pytest.raises(TypeError):
        sink.write(np.zeros((4, 4, 3), np.float64))
    with pytest.raises(ValueError):
        sink.write(np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- VirtualCameraSink


class RecordingBackend:
    """A pyvirtualcam backend (its documented contract) that records what Camera sends."""

    instances: list[RecordingBackend] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.width, self.height, self.fps = width, height, fps
        self.fourcc, self._device, self.kw = fourcc, device, kw
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = 0
        RecordingBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert not self.closed, "send after close"
        self.frames.append(frame.copy())
        self.times.append(time.perf_counter())

    def close(self) -> None:
        self.closed += 1

    def device(self) -> str:
        return self._device or "recorder0"

    def native_fourcc(self):
        return self.fourcc


REC = "vbg-test-recorder"


@pytest.fixture
def recorder():
    RecordingBackend.instances.clear()
    pyvirtualcam.register_backend(REC, RecordingBackend)
    yield RecordingBackend
    BACKENDS.pop(REC, None)


def indexed_frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """BGR frame: B=10, G=20, R=i."""
    f = np.empty((h, w, 3), np.uint8)
    f[..., 0], f[..., 1], f[..., 2] = 10, 20, i
    f[0, 0] = (0, 0, 0)
    f[0, -1] = (255, 255, 255)  # corners pin down the orientation
    return f


def test_vcam_frames_arrive_declared_bgr_in_order(recorder) -> None:
    with VirtualCameraSink(64, 48, 30, backend=REC, device="/dev/video42") as sink:
        assert sink.backend == REC and sink.device == "/dev/video42"
        for i in range(10):
            sink.write(indexed_frame(i))
        assert sink.frames_sent == 10
    (be,) = recorder.instances
    assert (be.width, be.height, be.fps) == (64, 48, 30)
    # The backend converts to the device's format; what it is told must match the bytes.
    assert be.fourcc == encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)
    assert len(be.frames) == 10
    for i, flat in enumerate(be.frames):
        assert flat.dtype == np.uint8 and flat.size == 48 * 64 * 3
        bgr = flat.reshape(48, 64, 3)
        assert tuple(bgr[10, 10]) == (10, 20, i)
        assert tuple(bgr[0, 0]) == (0, 0, 0) and tuple(bgr[0, -1]) == (255, 255, 255)
    assert be.closed == 1


def test_vcam_rejects_bad_frames_before_the_device(recorder) -> None:
    sink = VirtualCameraSink(64, 48, 30, backend=REC)
    with pytest.raises(TypeError):
        sink.write(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError):
        sink.write(np.zeros((64, 48, 3), np.uint8))
    with pytest.raises(ValueError):
        sink.write(np.zeros((48, 64, 4), np.uint8))
    sink.close()
    sink.close()
    (be,) = recorder.instances
    assert be.frames == [] and be.closed == 1  # close() reached the backend exactly once
    with pytest.raises(VbgError, match="after close"):
        sink.write(indexed_frame(0))


def test_vcam_pacing(recorder) -> None:
    fps = 40
    with VirtualCameraSink(64, 48, fps, backend=REC, pace=True) as sink:
        for i in range(12):
            sink.write(indexed_frame(i))
    (be,) = recorder.instances
    gaps = np.diff(be.times)
    assert np.median(gaps) == pytest.approx(1 / fps, rel=0.5)
    assert gaps.sum() == pytest.approx(11 / fps, rel=0.5)


def test_vcam_unknown_backend_lists_the_valid_ones(recorder) -> None:
    with pytest.raises(VbgError, match=f"unknown virtual camera backend 'nope'.*{REC}"):
        VirtualCameraSink(64, 48, 30, backend="nope")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2loopback is Linux-only")
@pytest.mark.skipif(bool(glob.glob("/dev/video*")), reason="a video device exists here")
def test_vcam_without_loopback_device_says_how_to_create_one() -> None:
    for backend in (None, "v4l2loopback"):
        with pytest.raises(VbgError) as ei:
            VirtualCameraSink(64, 48, 30, backend=backend)
        msg = str(ei.value)
        assert MODPROBE_HINT in msg and "\n" not in msg


# --------------------------------------------------------------------------- preview


@pytest.mark.parametrize(
    ("key", "action"),
    [
        ("n", "next_background"),
        ("N", "next_background"),
        ("Right", "next_background"),
        ("p", "prev_background"),
        ("Left", "prev_background"),
        ("b", "blur"),
        ("m", "mirror"),
        ("space", "pause"),
        (" ", "pause"),
        ("f", "overlay"),
        ("q", "quit"),
        ("Escape", "quit"),
        ("x", None),
        ("Shift_L", None),
        ("", None),
    ],
)
def test_key_action(key: str, action: str | None) -> None:
    assert key_action(key) == action


def test_ppm_bytes_is_rgb_p6() -> None:
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = (255, 0, 0)  # pure blue in BGR
    data = ppm_bytes(img)
    header = b"P6 3 2 255\n"
    assert data.startswith(header) and len(data) == len(header) + 2 * 3 * 3
    assert data[len(header) : len(header) + 3] == bytes([0, 0, 255])  # RGB: blue last


def test_overlay_text_draws_in_place() -> None:
    img = np.full((120, 320, 3), 128, np.uint8)
    overlay_text(img, "30.0 fps | 41 ms")
    assert (img == 255).all(axis=2).any() and (img == 0).all(axis=2).any()


@pytest.mark.skipif(sys.platform.startswith(("win", "darwin")), reason="X11 only")
def test_preview_without_display(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(VbgError) as ei:
        PreviewSink("vbg")
    assert str(ei.value) == NO_DISPLAY_MSG


class FakeTk:
    """Just enough of tkinter for PreviewSink without a display."""

    class TclError(Exception):
        pass

    class Tk:
        def __init__(self):
            self.bindings, self.protocols, self.updates, self.destroyed = {}, {}, 0, False

        def title(self, t):
            self.t = t

        def bind(self, seq, fn):
            self.bindings[seq] = fn

        def protocol(self, name, fn):
            self.protocols[name] = fn

        def update(self):
            self.updates += 1

        def destroy(self):
            self.destroyed = True

    class PhotoImage:
        def __init__(self, master=None):
            self.data = None

        def configure(self, data, format):
            assert format == "PPM"
            self.data = data

    class Label:
        def __init__(self, master, image, borderwidth):
            self.image = image

        def pack(self):
            pass


class KeyEvent:
    def __init__(self, keysym):
        self.keysym = keysym


def test_preview_sink_logic_with_a_fake_tk(monkeypatch) -> None:
    import tkinter

    monkeypatch.setenv("DISPLAY", ":99")
    for name in ("Tk", "PhotoImage", "Label", "TclError"):
        monkeypatch.setattr(tkinter, name, getattr(FakeTk, name))
    with PreviewSink("vbg test") as pv:
        img = draw_frame(2)
        pv.write(img)
        assert pv._photo.data == ppm_bytes(img) and pv._root.updates >= 1
        on_key = pv._root.bindings["<Key>"]
        for k in ("n", "x", "space", "f", "p"):
            on_key(KeyEvent(k))
        assert pv.poll_actions() == ["next_background", "pause", "overlay", "prev_background"]
        assert pv.poll_actions() == []
        assert pv.show_overlay  # 'f' toggles the overlay inside the window
        pv.set_status("24.0 fps | 35 ms")
        pv.write(img)
        assert pv._photo.data != ppm_bytes(img)  # the status line was drawn ...
        np.testing.assert_array_equal(img, draw_frame(2))  # ... on a copy, not the caller's frame
        pv._root.protocols["WM_DELETE_WINDOW"]()  # the window's close button
        assert pv.poll_actions() == ["quit"]
        root = pv._root
    assert root.destroyed and pv.closed
    pv.write(img)  # a closed preview ignores frames


def test_two_writers_to_one_output_never_leave_a_broken_file(tmp_path: Path) -> None:
    """Two runs to the same -o: each writes its own temporary file; whichever finishes last
    wins, and the final name always holds a complete video."""
    out = tmp_path / "same.mp4"
    a, b = VideoFileSink(out, FPS, W, H), VideoFileSink(out, FPS, W, H)
    assert a.partial != b.partial
    for i in range(6):
        a.write(draw_frame(i))
        b.write(draw_frame(i))
    b.write(draw_frame(6))
    a.close()
    assert VideoFileSource(out).frame_count == 6
    b.close()
    assert sum(1 for _ in VideoFileSource(out)) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["same.mp4"]
