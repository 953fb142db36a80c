"""Frames out: H.264 video files (with the input's audio), still images, a virtual camera and
a preview window.

Every sink takes BGR uint8 HxWx3 frames (vbg's convention) and converts at its own boundary
where the library wants something else. ``close()`` may be called any number of times; the
work happens exactly once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vbg import VbgError

log = logging.getLogger(__name__)

MODPROBE_HINT = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=vbg"
NO_DISPLAY_MSG = "no display for the preview window ($DISPLAY unset); use --output vcam or FILE.mp4"


class Sink(Protocol):
    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None: ...
    def close(self) -> None: ...


def check_frame(frame: np.ndarray, width: int, height: int) -> None:
    """TypeError for a wrong dtype, ValueError for a wrong shape (as pyvirtualcam does)."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise TypeError(f"frame dtype must be uint8, got {frame.dtype}")
    if frame.shape != (height, width, 3):
        raise ValueError(f"frame shape must be {(height, width, 3)} (BGR), got {frame.shape}")


def partial_path(path: str | os.PathLike[str]) -> Path:
    """A new, unique temporary name beside ``path`` (same folder, so the final rename is
    atomic): out.mp4 -> .out.<pid>-<random>.partial.mp4. The file is created empty (so no
    other process, or this one, can get the same name) and can never be an existing file -
    the input included, whatever it is called."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{p.stem}.{os.getpid()}-", suffix=f".partial{p.suffix}", dir=p.parent
    )
    os.close(fd)
    return Path(tmp)


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Everything that would make writing ``path`` fail, checked before any work starts:
    a missing or unwritable folder, a folder under the output name."""
    p = Path(path)
    parent = p.parent
    if not parent.is_dir():
        raise VbgError(f"output folder does not exist: {parent}")
    if p.is_dir():
        raise VbgError(f"the output {p} is a folder; give a file name")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VbgError(f"cannot write to {parent}: permission denied")
    if p.exists() and not os.access(p, os.W_OK):
        raise VbgError(f"cannot replace {p}: the file is read-only")


# --------------------------------------------------------------------------- video file


def h264_encoders(gpu: bool) -> list[str]:
    """H.264 encoders to try, best first: NVENC when the frames come from a GPU and this
    PyAV build has it (it still needs an NVIDIA GPU and driver to open), then x264."""
    import av

    names = ["h264_nvenc", "libx264"] if gpu else ["libx264"]
    return [n for n in names if n in av.codecs_available] or ["libx264"]


def _muxer_for(path: Path) -> str | None:
    """The muxer for the *final* name (the temporary name ends the same, but be explicit)."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}.get(
        path.suffix.lower()
    )


def _fraction(x: float | Fraction | int) -> Fraction:
    if isinstance(x, Fraction):
        return x
    # 29.97 -> 30000/1001: limit_denominator recovers the usual NTSC rates from floats.
    return Fraction(x).limit_denominator(1001)


class VideoFileSink:
    """H.264 (libx264, yuv420p, CRF) MP4 writer that keeps the input's timing and audio.

    - Frame timestamps: ``write(frame, pts)`` with the input frame's pts in seconds keeps the
      input's timeline (so frame count and duration match); without pts, frames are spaced
      1/fps apart.
    - Audio: the audio packets of ``audio_from`` are copied unchanged (no re-encode, no
      quality loss), interleaved with the video as it is written.
    - The file is written to a unique temporary name beside the target (``partial_path``)
      and renamed on ``close()``, so the target name only ever holds a complete file (from
      one run, when several write it at once); ``abort()`` deletes the partial file.
      As a context manager, an exception aborts and a clean exit closes.
    - yuv420p needs even sides: an odd last row/column is cropped off.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        width: int,
        height: int,
        audio_from: str | os.PathLike[str] | None = None,
        crf: int = 20,
        *,
        preset: str = "veryfast",
        encoder: str = "libx264",
    ) -> None:
        """encoder: libx264 (crf, preset) or h264_nvenc (NVIDIA's encoder, where the PyAV
        build has it and a GPU is present; crf maps to its constant-quality cq)."""
        import av

        from vbg.signals import track_temp

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        if self.width < 2 or self.height < 2:
            raise ValueError(f"frame size must be at least 2x2, got {self.width}x{self.height}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        self.fps = _fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        check_output_path(self.path)
        try:
            self.partial = partial_path(self.path)
        except OSError as e:
            raise VbgError(f"cannot write {self.path}: {e.strerror or e}") from e
        track_temp(self.partial)
        # Encoded size: yuv420p subsamples chroma 2x2, so x264 refuses odd sides.
        self._enc_w, self._enc_h = self.width & ~1, self.height & ~1
        self.frames_written = 0
        self._closed = False
        self._last_pts: int | None = None
        self._audio_in: Any = None
        self._audio_packets: Iterator[Any] | None = None
        self._pending_audio: Any = None
        self.audio_packets_written = 0
        self.has_audio = False  # True once audio_from's audio stream is being copied
        try:
            self._out = av.open(str(self.partial), mode="w", format=_muxer_for(self.path))
        except av.FFmpegError as e:
            self._forget_partial()
            raise VbgError(f"cannot write {self.path}: {' '.join(str(e).split())}") from e
        try:
            stream = self._out.add_stream(encoder, rate=self.fps)
            stream.width, stream.height = self._enc_w, self._enc_h
            stream.pix_fmt = "yuv420p"
            if encoder == "h264_nvenc":
                # Constant quality like x264's crf (no bitrate target).
                stream.options = {"rc": "vbr", "cq": str(int(crf)), "preset": "p4"}
                stream.codec_context.bit_rate = 0
            else:
                stream.options = {"crf": str(int(crf)), "preset": preset}
            self.encoder = encoder
            # 1/(1000*fps): a frame lasts exactly 1000 ticks, and input timestamps off the frame
            # grid (variable frame rate) survive; a 1/fps time base would round them onto it.
            self._tb = 1 / (self.fps * 1000)
            stream.codec_context.time_base = self._tb
            stream.time_base = self._tb
            self._stream = stream
            self._frame_ticks = 1000
            if audio_from is not None:
                self._open_audio(Path(audio_from))
            # Open the codecs and write the header now: a bad encoder setting or an
            # unwritable folder fails here, before any frame is processed.
            self._out.start_encoding()
        except av.FFmpegError as e:
            self._out.close()
            self._forget_partial()
            self._close_audio_in()
            why = " ".join(str(e).split())
            if encoder != "libx264":  # a hardware encoder that will not open (no GPU/driver)
                raise VbgError(f"cannot open the {encoder} encoder: {why}") from e
            if isinstance(e, PermissionError) or getattr(e, "errno", None) == errno.EACCES:
                raise VbgError(f"cannot write {self.path}: permission denied") from e
            if self.has_audio:  # most often: the muxer cannot hold the copied audio codec
                why += f" (with the audio of {audio_from} copied in; is it supported in {self.path.suffix}?)"
            raise VbgError(f"cannot write {self.path}: {why}") from e
        except BaseException:
            self._out.close()
            self._forget_partial()
            self._close_audio_in()
            raise

    def _forget_partial(self) -> None:
        from vbg.signals import untrack_temp

        self.partial.unlink(missing_ok=True)
        untrack_temp(self.partial)

    def _open_audio(self, src: Path) -> None:
        import av

        from vbg.sources import codec_name, open_media

        try:
            container = open_media(src)
        except (av.FFmpegError, UnicodeError) as e:
            raise VbgError(f"cannot read audio from {src}: {' '.join(str(e).split())}") from e
        if not container.streams.audio:
            container.close()
            return
        in_stream = container.streams.audio[0]
        try:
            self._audio_out = self._out.add_stream_from_template(in_stream)
        except (av.FFmpegError, ValueError, AttributeError) as e:
            container.close()
            raise VbgError(
                f"cannot copy the {codec_name(in_stream)} audio of {src} into "
                f"{self.path.suffix}: {e}"
            ) from e
        self._audio_in = container
        self.has_audio = True
        self._audio_packets = (p for p in container.demux(in_stream) if p.dts is not None)

    def _mux_audio_until(self, t: float | None) -> None:
        """Copy audio packets with a timestamp up to t seconds (all of them if t is None)."""
        if self._audio_packets is None:
            return
        while True:
            pkt = self._pending_audio
            if pkt is None:
                pkt = next(self._audio_packets, None)
                if pkt is None:
                    self._audio_packets = None
                    return
            ts = pkt.pts if pkt.pts is not None else pkt.dts
            if t is not None and float(ts * pkt.time_base) > t:
                self._pending_audio = pkt
                return
            self._pending_audio = None
            pkt.stream = self._audio_out
            self._out.mux(pkt)
            self.audio_packets_written += 1

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        """Encode one BGR frame; pts (seconds) from the input keeps its timeline."""
        import av

        if self._closed:
            raise VbgError(f"write to {self.path} after close()")
        check_frame(frame_bgr, self.width, self.height)
        if (self._enc_w, self._enc_h) != (self.width, self.height):
            frame_bgr = frame_bgr[: self._enc_h, : self._enc_w]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        if pts is None:
            ticks = 0 if self._last_pts is None else self._last_pts + self._frame_ticks
        else:
            ticks = round(pts / self._tb)
            if self._last_pts is not None and ticks <= self._last_pts:
                # Timestamps must increase; a duplicate/backwards pts would be rejected.
                ticks = self._last_pts + 1
        frame.pts = ticks
        frame.time_base = self._tb
        frame.duration = self._frame_ticks
        self._last_pts = ticks
        try:
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
            # Interleave: audio up to this frame's time, so players need no big buffers.
            self._mux_audio_until(float(ticks * self._tb))
        except av.FFmpegError as e:
            raise VbgError(f"encoding {self.path} failed: {' '.join(str(e).split())}") from e
        self.frames_written += 1

    def close(self, *, trim_audio: bool = False) -> None:
        """Flush, finish the file and rename it into place. Exactly once; later calls no-op.

        trim_audio: stop the copied audio at the end of the video (for a run cut short, e.g.
        finalized after Ctrl-C), instead of copying the whole audio track.
        """
        import av

        from vbg.signals import untrack_temp

        if self._closed:
            return
        self._closed = True
        if self.frames_written == 0:
            self._discard()
            raise VbgError(f"no frames were written; {self.path} not created")
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            end = None
            if trim_audio and self._last_pts is not None:
                end = float((self._last_pts + self._frame_ticks) * self._tb)
            self._mux_audio_until(end)
            self._out.close()
        except av.FFmpegError as e:
            self._discard()
            raise VbgError(f"finishing {self.path} failed: {' '.join(str(e).split())}") from e
        except BaseException:
            self._discard()
            raise
        finally:
            self._close_audio_in()
        try:
            os.replace(self.partial, self.path)
        except OSError as e:
            self._forget_partial()
            raise VbgError(f"cannot move the finished video to {self.path}: {e.strerror}") from e
        untrack_temp(self.partial)

    def abort(self) -> None:
        """Stop without producing a file: the partial file is removed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is being thrown away anyway
            self._out.close()
        self._close_audio_in()
        self._forget_partial()

    def _close_audio_in(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None
        self._audio_packets = None

    def __enter__(self) -> VideoFileSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------- still image


class ImageSink:
    """Writes a frame to an image file (png/jpg/...), atomically: a temporary file in the same
    folder is renamed over the target, so a reader never sees a half-written image. Each
    write() replaces the image (the last frame wins)."""

    EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
    ALPHA_EXTS = frozenset({".png", ".webp", ".tif", ".tiff"})

    def __init__(self, path: str | os.PathLike[str], *, jpeg_quality: int = 95) -> None:
        self.path = Path(path)
        self.ext = self.path.suffix.lower()
        if self.ext not in self.EXTS:
            raise VbgError(
                f"cannot write an image named {self.path.name}: use one of {', '.join(sorted(self.EXTS))}"
            )
        if not self.path.parent.is_dir():
            raise VbgError(f"output folder does not exist: {self.path.parent}")
        self._params = (
            [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if self.ext in (".jpg", ".jpeg") else []
        )
        self.frames_written = 0
        self._closed = False

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        if self._closed:
            raise VbgError(f"write to {self.path} after close()")
        if not isinstance(frame_bgr, np.ndarray) or frame_bgr.dtype != np.uint8:
            raise TypeError("frame must be a uint8 numpy array")
        # BGRA (a transparent background, vbg process --output-alpha) where the format has alpha.
        channels = (3, 4) if self.ext in self.ALPHA_EXTS else (3,)
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] not in channels:
            raise ValueError(f"frame shape must be (H, W, 3) BGR, got {frame_bgr.shape}")
        ok, buf = cv2.imencode(self.ext, frame_bgr, self._params)
        if not ok:
            raise VbgError(f"cannot encode {self.path.name}")
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=self.ext, dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.tobytes())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.frames_written += 1

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> ImageSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- virtual camera


def _vcam_hint() -> str:
    if sys.platform.startswith("linux"):
        return f"create a loopback camera with: {MODPROBE_HINT}"
    return "install OBS Studio and start its virtual camera once, then retry"


class VirtualCameraSink:
    """Frames to a virtual camera through pyvirtualcam (v4l2loopback / OBS).

    The frames go as they are, declared BGR: pyvirtualcam's backends convert whatever they
    are given into the device's own format (I420 on v4l2loopback, NV12 in OBS) in one
    step, from BGR as from RGB, so a BGR->RGB copy of our own first was a wasted pass over
    the frame (0.2 ms at 720p). Frames of the wrong dtype or
    shape raise TypeError/ValueError here, before anything reaches the device. pace=True
    sleeps after each frame until the next is due (for a source faster than ``fps``).
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        backend: str | None = None,
        device: str | None = None,
        *,
        pace: bool = False,
        print_fps: bool = False,
    ) -> None:
        import pyvirtualcam
        from pyvirtualcam.camera import BACKENDS

        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.pace = pace
        self._closed = False
        if backend is None and sys.platform.startswith("linux"):
            # Name the real device's backend: with None, pyvirtualcam would fall through to
            # any backend registered in this process (a benchmark's null camera, say).
            backend = "v4l2loopback"
        if backend is not None and backend not in BACKENDS:
            known = ", ".join(sorted(BACKENDS)) or "none on this platform"
            raise VbgError(f"unknown virtual camera backend '{backend}'; choose one of: {known}")
        if not BACKENDS:
            raise VbgError(f"no virtual camera backend on this platform; {_vcam_hint()}")
        try:
            self._cam = pyvirtualcam.Camera(
                self.width,
                self.height,
                self.fps,
                fmt=pyvirtualcam.PixelFormat.BGR,
                backend=backend,
                device=device,
                print_fps=print_fps,
            )
        except RuntimeError as e:
            # pyvirtualcam reports every backend it tried, one per line: keep it one line.
            why = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
            raise VbgError(f"cannot open the virtual camera ({why}); {_vcam_hint()}") from e
        log.info("virtual camera: %s (%s backend)", self._cam.device, self._cam.backend)

    @property
    def device(self) -> str:
        return self._cam.device

    @property
    def backend(self) -> str:
        return self._cam.backend

    @property
    def frames_sent(self) -> int:
        return self._cam.frames_sent

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        if self._closed:
            raise VbgError("write to the virtual camera after close()")
        check_frame(frame_bgr, self.width, self.height)
        self._cam.send(frame_bgr)
        if self.pace:
            self._cam.sleep_until_next_frame()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cam.close()

    def __enter__(self) -> VirtualCameraSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- preview window

# Hotkeys (tk keysyms) -> the actions the live loop acts on.
KEY_ACTIONS: dict[str, str] = {
    "n": "next_background",
    "Right": "next_background",
    "p": "prev_background",
    "Left": "prev_background",
    "b": "blur",
    "m": "mirror",
    "space": "pause",
    "f": "overlay",
    "q": "quit",
    "Escape": "quit",
}


def key_action(keysym: str) -> str | None:
    """The action for a key (tk keysym; single letters are case-insensitive), or None."""
    if len(keysym) == 1:
        keysym = keysym.lower()
        if keysym == " ":
            keysym = "space"
    return KEY_ACTIONS.get(keysym)


def ppm_bytes(frame_bgr: np.ndarray) -> bytes:
    """A binary PPM (P6) of a BGR frame: the one image format Tk reads without Pillow."""
    h, w = frame_bgr.shape[:2]
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    return b"P6 %d %d 255\n" % (w, h) + rgb.tobytes()


def overlay_text(frame_bgr: np.ndarray, text: str, *, origin: tuple[int, int] = (10, 24)) -> None:
    """Draw a status line (e.g. FPS/latency) in place: white on a dark box, readable on any
    background. (Not an outline drawn as thicker text: OpenCV's glyph advance grows with
    the stroke thickness, so the two layers drift apart along the line.)"""
    scale = max(0.4, frame_bgr.shape[0] / 720 * 0.7)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(frame_bgr, (x - 4, y - th - 4), (x + tw + 4, y + base + 2), (0, 0, 0), -1)
    cv2.putText(
        frame_bgr, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )


def _have_display() -> bool:
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY"))


class PreviewSink:
    """A tkinter window showing the frames, with hotkeys.

    Key presses are not acted on here: they become action names (see KEY_ACTIONS) that the
    live loop collects with ``poll_actions()``; only the FPS overlay ('f') is handled by the
    window itself. Tk must be driven from the thread that created the sink.
    """

    def __init__(self, title: str = "vbg", *, max_size: tuple[int, int] | None = None) -> None:
        if not _have_display():
            raise VbgError(NO_DISPLAY_MSG)
        try:
            import tkinter as tk
        except ImportError as e:
            raise VbgError(
                "the preview window needs tkinter (e.g. apt install python3-tk); "
                "use --output vcam or FILE.mp4"
            ) from e
        try:
            self._root = tk.Tk()
        except tk.TclError as e:
            raise VbgError(f"cannot open the preview window: {e}") from e
        self._tk = tk
        self._root.title(title)
        self._photo = tk.PhotoImage(master=self._root)
        self._label = tk.Label(self._root, image=self._photo, borderwidth=0)
        self._label.pack()
        self._root.bind("<Key>", self._on_key)
        self._root.protocol("WM_DELETE_WINDOW", lambda: self._actions.append("quit"))
        self._actions: list[str] = []
        self.max_size = max_size
        self.show_overlay = False
        self.status_text = ""
        self.closed = False

    def _on_key(self, event: Any) -> None:
        action = key_action(event.keysym)
        if action is None:
            return
        if action == "overlay":
            self.show_overlay = not self.show_overlay
        self._actions.append(action)

    def pump(self) -> None:
        """Process window events without blocking (call while paused, too)."""
        if self.closed:
            return
        try:
            self._root.update()
        except self._tk.TclError:  # the window was destroyed by the window manager
            self.closed = True
            self._actions.append("quit")

    def poll_actions(self) -> list[str]:
        """The actions (in order) from keys pressed since the last call."""
        self.pump()
        actions, self._actions = self._actions, []
        return actions

    def set_status(self, text: str) -> None:
        """The line drawn on the frame while the overlay is on ('f')."""
        self.status_text = text

    def set_title(self, text: str) -> None:
        """The window title (the live loop shows the active background and the hotkeys)."""
        if text != getattr(self, "_title", None) and not self.closed:
            self._title = text
            with contextlib.suppress(self._tk.TclError):
                self._root.title(text)

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        if self.closed:
            return
        if frame_bgr.dtype != np.uint8:
            raise TypeError(f"frame dtype must be uint8, got {frame_bgr.dtype}")
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"frame shape must be (H, W, 3) BGR, got {frame_bgr.shape}")
        if self.max_size is not None:
            h, w = frame_bgr.shape[:2]
            s = min(self.max_size[0] / w, self.max_size[1] / h, 1.0)
            if s < 1.0:
                size = (max(1, round(w * s)), max(1, round(h * s)))
                frame_bgr = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)
        if self.show_overlay and self.status_text:
            frame_bgr = frame_bgr.copy()  # the caller's buffer is reused; never draw on it
            overlay_text(frame_bgr, self.status_text)
        try:
            self._photo.configure(data=ppm_bytes(frame_bgr), format="PPM")
        except self._tk.TclError:
            self.closed = True
            self._actions.append("quit")
            return
        self.pump()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(self._tk.TclError):
            self._root.destroy()

    def __enter__(self) -> PreviewSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
