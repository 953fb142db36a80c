"""Frames in: video files (every frame, with timestamps), still images, live cameras.

Two kinds of source with two different contracts:

- Recorded media (``VideoFileSource``, ``ImageSource``) are *iterables*: every frame is
  delivered, in order, with its presentation time, because ``vbg process`` must write the same
  frames back out.
- Live sources (``CameraSource``, ``PacedFileSource``) run a capture thread and hand out only
  the *newest* frame through ``read(timeout)``. A frame that was not picked up before the next
  one arrived is dropped (and counted): for a live call, showing an old frame late is worse than
  skipping it, and a queue would add one frame of latency per queued frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vbg import VbgError
from vbg.quiet import silence_opencv

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass
class Frame:
    """One frame entering the program.

    image: BGR uint8 HxWx3, C-contiguous. pts: presentation time in seconds (None where the
    source has no timeline, e.g. a still image or a camera). t_capture: time.perf_counter()
    when the frame entered the program, the start point of glass-to-glass latency.
    """

    image: np.ndarray
    index: int
    pts: float | None
    t_capture: float


# --------------------------------------------------------------------------- recorded media


def open_media(path: str | os.PathLike[str]) -> Any:
    """av.open for reading. Metadata in another encoding than UTF-8 (a Latin-1 title from an
    old camera) is decoded with replacement characters instead of failing the whole file."""
    import av

    return av.open(str(path), mode="r", metadata_errors="replace")


def codec_name(stream: Any) -> str:
    """The codec of a stream, or 'unknown' where FFmpeg has no decoder for it."""
    cc = getattr(stream, "codec_context", None)
    return str(getattr(cc, "name", None) or getattr(stream, "codec_tag", None) or "unknown")


def _av_error_line(e: BaseException) -> str:
    """A one-line description of a PyAV error (its messages can name the file twice)."""
    msg = getattr(e, "strerror", None) or str(e)
    return " ".join(str(msg).split())


class VideoFileSource:
    """Every frame of a video file, decoded with PyAV as BGR, with its pts in seconds.

    The file is probed on construction, so a missing, corrupt or non-video file fails here
    with a one-line VbgError rather than in the middle of a run. Each ``iter()`` decodes from
    the start with a fresh demuxer (a seek back to 0 is not exact for every container).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import av

        self.path = Path(path)
        if not self.path.exists():
            raise VbgError(f"input not found: {self.path}")
        if self.path.is_dir():
            raise VbgError(f"input is a folder, not a video file: {self.path}")
        try:
            container = open_media(self.path)
        except (av.FFmpegError, UnicodeError) as e:
            raise VbgError(f"cannot read video {self.path}: {_av_error_line(e)}") from e
        self._iter_container: Any = None
        try:
            if not container.streams.video:
                raise VbgError(f"no video stream in {self.path}")
            stream = container.streams.video[0]
            cc = stream.codec_context
            if cc is None:
                raise VbgError(
                    f"cannot read video {self.path}: its video codec "
                    f"({codec_name(stream)}) is not supported"
                )
            if not cc.width or not cc.height:
                raise VbgError(f"cannot read video {self.path}: the video stream has no size")
            self.width: int = int(cc.width)
            self.height: int = int(cc.height)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps: Fraction = Fraction(rate) if rate else Fraction(30)
            self.has_audio: bool = bool(container.streams.audio)
            self.time_base: Fraction | None = stream.time_base
            self.frame_count: int = int(stream.frames) or self._count_packets(container)
            if stream.duration is not None and stream.time_base is not None:
                self.duration: float = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                self.duration = container.duration / av.time_base
            else:
                self.duration = self.frame_count / float(self.fps)
            # Last: it decodes a frame. A phone video stored sideways with a rotation tag
            # plays upright; so do we.
            self.rotation: int = _stream_rotation(container, stream)
            if self.rotation in (90, 270):
                self.width, self.height = self.height, self.width
        except av.FFmpegError as e:
            raise VbgError(f"cannot read video {self.path}: {_av_error_line(e)}") from e
        finally:
            container.close()

    @staticmethod
    def _count_packets(container: Any) -> int:
        """Frame count by demuxing (no decode): some containers (mkv, webm, ts) store none."""
        stream = container.streams.video[0]
        # A size-0 packet is the demuxer's end-of-stream marker, not a frame.
        return sum(1 for p in container.demux(stream) if p.size > 0)

    def __iter__(self) -> Iterator[Frame]:
        import av

        try:
            container = open_media(self.path)
        except (av.FFmpegError, UnicodeError) as e:
            raise VbgError(f"cannot read video {self.path}: {_av_error_line(e)}") from e
        self._iter_container = container
        stream = container.streams.video[0]
        # Frame threading speeds decoding of large frames; it changes nothing in the output.
        stream.thread_type = "AUTO"
        index = 0
        last_t = 0.0
        bad_packets = 0
        first_error: str | None = None
        try:
            for packet in container.demux(stream):
                try:
                    # A size-0 packet flushes the decoder at the end of the stream.
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    # A corrupt packet: skip it and decode on (process what decodes).
                    bad_packets += 1
                    first_error = first_error or _av_error_line(e)
                    continue
                for frame in decoded:
                    image = upright(frame.to_ndarray(format="bgr24"), self.rotation)
                    pts = float(frame.time) if frame.time is not None else None
                    yield Frame(
                        image=np.ascontiguousarray(image),
                        index=index,
                        pts=pts,
                        t_capture=time.perf_counter(),
                    )
                    index += 1
                    last_t = pts if pts is not None else index / float(self.fps)
        except av.FFmpegError as e:  # the demuxer itself gave up
            first_error = first_error or _av_error_line(e)
            bad_packets += 1
        finally:
            container.close()
            self._iter_container = None
        if bad_packets or index < self.frame_count:
            # Fewer frames than the file announces (a copy cut short, a recording whose
            # writer died) or packets that would not decode.
            why = f": {first_error}" if first_error else ""
            raise VbgError(
                f"{self.path} is truncated or corrupt: decoding stopped at frame {index} of "
                f"{self.frame_count} ({last_t:.2f} s of {self.duration:.2f} s){why}"
            )

    def __len__(self) -> int:
        return self.frame_count

    def close(self) -> None:
        """Release the demuxer of an iteration still in progress (safe to call any time)."""
        if self._iter_container is not None:
            self._iter_container.close()
            self._iter_container = None

    def __enter__(self) -> VideoFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stream_rotation(container: Any, stream: Any) -> int:
    """Clockwise degrees (0/90/180/270) a player turns this stream to show it upright,
    from the display matrix (decoding the first frame) or an old-style 'rotate' tag."""
    tag = stream.metadata.get("rotate")
    if tag is not None:
        with contextlib.suppress(ValueError):
            return int(float(tag)) % 360 // 90 * 90
    try:
        for frame in container.decode(stream):
            # PyAV reports the display matrix angle counter-clockwise.
            return int(round(-float(getattr(frame, "rotation", 0) or 0))) % 360 // 90 * 90
    except Exception:  # noqa: BLE001 - a probe: decoding errors surface in iteration
        return 0
    return 0


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 90:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if rotation == 180:
        return cv2.rotate(image, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


def jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG's entropy-coded data runs to its end-of-image marker. OpenCV decodes a
    truncated JPEG without an error, filling the missing part with grey."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        i += 2 + length
        if marker == 0xDA:  # start of scan: skip entropy-coded data to the next marker
            while i + 1 < n:
                if data[i] == 0xFF and data[i + 1] not in (0x00, *range(0xD0, 0xD8), 0xFF):
                    break
                i += 1
            else:
                return False
    return i + 2 <= n and data[i : i + 2] == b"\xff\xd9"


class ImageSource:
    """A still image as a one-frame source (same attributes as VideoFileSource)."""

    fps = None
    has_audio = False
    duration = 0.0
    frame_count = 1

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VbgError(f"input not found: {self.path}")
        data = self.path.read_bytes()
        if data[:2] == b"\xff\xd8" and not jpeg_is_complete(data):
            raise VbgError(f"cannot read image {self.path}: the JPEG is truncated or corrupt")
        # IMREAD_COLOR: grey, 16-bit and alpha images all come back as 8-bit BGR.
        silence_opencv()
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        except cv2.error:
            image = None
        if image is None or image.size == 0:
            raise VbgError(f"cannot read image {self.path} (unsupported or corrupt)")
        self.image: np.ndarray = np.ascontiguousarray(image)
        self.height, self.width = self.image.shape[:2]

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(image=self.image, index=0, pts=None, t_capture=time.perf_counter())

    def __len__(self) -> int:
        return 1

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_image_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def open_input(path: str | os.PathLike[str]) -> VideoFileSource | ImageSource:
    """The right source for a file: image extensions -> ImageSource, anything else is probed
    as a video by PyAV (so a misnamed or extension-less video still works)."""
    p = Path(path)
    if not p.exists():
        raise VbgError(f"input not found: {p}")
    if is_image_path(p):
        return ImageSource(p)
    return VideoFileSource(p)


# --------------------------------------------------------------------------- live sources


class LatestFrame:
    """A one-slot handoff between a capture thread and a consumer: the newest frame wins.

    put() replaces an unread frame (counting it as dropped) instead of queueing it; take()
    waits for a frame, for close(), or for the timeout.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0
        self.delivered = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def take(self, timeout: float | None) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            if frame is not None:
                self.delivered += 1
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._frame = None

    @property
    def closed(self) -> bool:
        return self._closed


class Capture(Protocol):
    """The subset of cv2.VideoCapture that CameraSource uses (a fake implements it in tests)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def set(self, prop: int, value: float) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


def is_stream_url(spec: int | str) -> bool:
    """rtsp://, http://, udp:// ...: a network stream (read like a camera, reconnected)."""
    return isinstance(spec, str) and "://" in spec


def parse_camera_spec(spec: int | str) -> int | str:
    """'0' -> 0 (a device index); '/dev/video2', URLs and file paths stay strings."""
    if isinstance(spec, str) and spec.strip().isdigit():
        return int(spec.strip())
    return spec


def _open_cv2_capture(spec: int | str) -> Capture:
    return cv2.VideoCapture(spec)


class _ThreadedSource:
    """What CameraSource and PacedFileSource share: a producer thread that puts frames into
    a latest-frame-wins slot, and read()/stop() for the consumer. Subclasses implement
    start() and _run(), and name themselves for error messages."""

    name = "source"

    def __init__(self) -> None:
        self._slot = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._started = False
        self._index = 0

    def start(self) -> _ThreadedSource:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def dropped(self) -> int:
        """Frames produced but replaced by a newer one before read() picked them up."""
        return self._slot.dropped

    @property
    def captured(self) -> int:
        return self._index

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame not yet read, waiting up to ``timeout`` s; None on timeout, after
        stop(), or at the end of a file. A failure inside the producer thread is re-raised
        here, in the caller's thread. The first read starts the source; a read after stop()
        does not restart it."""
        if not self._started:
            self.start()
        frame = self._slot.take(timeout)
        if frame is None and self._error is not None:
            e = self._error
            if isinstance(e, VbgError):
                raise e
            raise VbgError(f"{self.name} failed: {e}") from e
        return frame

    def stop(self) -> None:
        """Stop the thread and release the device or file. Idempotent."""
        self._stop.set()
        self._slot.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)

    close = stop

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def device_node(spec: int | str) -> Path | None:
    """The device file a camera spec names (0 -> /dev/video0 on Linux), None for a URL."""
    if isinstance(spec, int):
        return Path(f"/dev/video{spec}") if os.name == "posix" else None
    return Path(spec) if spec.startswith("/dev/") else None


@dataclass
class _ReadState:
    """Shared between one capture's reader thread and the supervising thread."""

    last_frame_t: float
    frames: int = 0
    failure: str | None = None  # why the reader gave up; set before `done`
    abandoned: bool = False  # the supervisor moved on (a stalled read): drop what comes
    done: threading.Event = field(default_factory=threading.Event)


class CameraSource(_ThreadedSource):
    """A live camera read on its own thread; ``read()`` returns the newest frame.

    spec: device index (0), device path (/dev/video2) or stream URL. size/fps are *requested*;
    the driver may pick something else, and ``width``/``height``/``fps`` report what it chose.

    Camera loss is one event, whatever its form: reads that return no frame
    (``fail_threshold`` in a row), a read that raises, a read that blocks for longer than
    ``stall_s`` (a stalled driver or a dead stream), or a device that vanished. The source
    then releases the capture and reopens it with exponential ``backoff`` until stop(); a
    device node that reappears is retried at once rather than at the end of a backoff wait.
    Meanwhile read() simply returns None (``running`` stays True): the live loop keeps the
    virtual camera fed. ``reconnects`` counts the reopenings, ``outages`` the losses.
    ``mirror`` may be toggled while running (the preview's 'm' key).
    capture_factory: builds the capture object from the spec (default cv2.VideoCapture); tests
    inject a fake here because there is no camera on a CI machine.
    """

    def __init__(
        self,
        spec: int | str = 0,
        size: tuple[int, int] | None = (1280, 720),
        fps: float | None = 30,
        mirror: bool = False,
        *,
        capture_factory: Callable[[int | str], Capture] | None = None,
        fail_threshold: int = 5,
        backoff: tuple[float, float] = (0.1, 0.5),
        stall_s: float | None = None,
    ) -> None:
        self.spec = parse_camera_spec(spec)
        self.requested_size = size
        self.requested_fps = fps
        self.mirror = mirror
        self._factory = capture_factory or _open_cv2_capture
        self._fail_threshold = max(1, fail_threshold)
        self._backoff = backoff
        # A camera at 30 fps that gives nothing for 2 s is stuck; a slow one gets 10 periods.
        self.stall_s = stall_s if stall_s is not None else max(2.0, 10.0 / float(fps or 30))
        super().__init__()
        self._cap: Capture | None = None
        self.reconnects = 0
        self.outages = 0
        self._lost_at: float | None = None  # when the current outage began
        self.width: int | None = None
        self.height: int | None = None
        self.fps: float | None = None

    @property
    def name(self) -> str:
        return f"camera {self.spec!r}" if isinstance(self.spec, str) else f"camera {self.spec}"

    def _open(self) -> Capture:
        """Open and configure the capture; raises VbgError naming the camera on failure."""
        if self._factory is _open_cv2_capture:
            silence_opencv()
        try:
            cap = self._factory(self.spec)
        except (cv2.error, OSError) as e:
            raise VbgError(f"cannot open {self.name}: {e}") from e
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            hint = " (is it connected, and not in use by another program?)"
            raise VbgError(f"cannot open {self.name}{hint}")
        try:
            if self.requested_size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.requested_size[0]))
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.requested_size[1]))
            if self.requested_fps:
                cap.set(cv2.CAP_PROP_FPS, float(self.requested_fps))
            # Keep the driver's own queue short, otherwise it hands out old frames first.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        except cv2.error as e:
            cap.release()
            raise VbgError(f"cannot configure {self.name}: {e}") from e
        return cap

    def start(self) -> CameraSource:
        """Open the camera (errors surface here) and start the capture thread. Idempotent."""
        if self.running:
            return self
        self._stop.clear()
        self._slot.reopen()
        self._error = None
        self._cap = self._open()
        self._started = True
        self._thread = threading.Thread(target=self._run, name=f"vbg-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        """Supervisor: read until the capture fails, then reopen it, until stop()."""
        delay = self._backoff[0]
        try:
            while not self._stop.is_set():
                if self._cap is None:
                    try:
                        self._cap = self._open()
                    except VbgError as e:
                        log.debug("%s; retrying in %.2fs", e, delay)
                        if self._wait_retry(delay):
                            break
                        delay = min(delay * 2, self._backoff[1])
                        continue
                cap, self._cap = self._cap, None
                state = self._read_until_failure(cap)
                if state is None or self._stop.is_set():
                    break
                if state.frames:
                    self.outages += 1
                    self._lost_at = time.perf_counter()
                    delay = self._backoff[0]
                    log.warning("%s %s; reconnecting", self.name, state.failure)
                else:
                    # Opened but gave nothing: back off as for a failed open, quietly.
                    log.debug("%s %s; retrying in %.2fs", self.name, state.failure, delay)
                    if self._wait_retry(delay):
                        break
                    delay = min(delay * 2, self._backoff[1])
        except BaseException as e:  # handed to the reader thread, not swallowed
            self._error = e
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._slot.close()

    def _wait_retry(self, delay: float) -> bool:
        """Wait up to ``delay`` before the next open attempt, sooner if the device node
        appears (so a replugged camera is back at once). True if stop() was called."""
        node = device_node(self.spec)
        absent = node is not None and not node.exists()
        deadline = time.perf_counter() + delay
        while (left := deadline - time.perf_counter()) > 0:
            if self._stop.wait(min(0.05, left)):
                return True
            if absent and node is not None and node.exists():
                return False
        return self._stop.is_set()

    def _read_until_failure(self, cap: Capture) -> _ReadState | None:
        """Read ``cap`` on a reader thread until it fails or stalls: returns the reader's
        state, with why in ``failure`` (None after stop()). A stalled reader cannot be interrupted; it is abandoned, and releases its
        capture whenever its blocked read returns."""
        state = _ReadState(last_frame_t=time.perf_counter())
        reader = threading.Thread(
            target=self._read_loop, args=(cap, state), name=f"vbg-{self.name}-read", daemon=True
        )
        reader.start()
        while not state.done.wait(0.05):
            if self._stop.is_set():
                reader.join(timeout=1.0)
                return None
            if time.perf_counter() - state.last_frame_t > self.stall_s:
                state.abandoned = True
                state.failure = f"delivered no frame for {self.stall_s:.1f} s"
                return state
        return state

    def _read_loop(self, cap: Capture, state: _ReadState) -> None:
        failures = 0
        try:
            while not self._stop.is_set() and not state.abandoned:
                try:
                    ok, image = cap.read()
                except Exception as e:  # a driver error is camera loss, not a crash
                    state.failure = f"read failed ({type(e).__name__}: {e})"
                    return
                t = time.perf_counter()
                if state.abandoned:
                    return
                if not ok or image is None or image.size == 0:
                    failures += 1
                    if failures >= self._fail_threshold:
                        state.failure = "stopped delivering frames"
                        return
                    self._stop.wait(0.01)
                    continue
                failures = 0
                state.last_frame_t = t
                state.frames += 1
                if self._lost_at is not None:
                    self.reconnects += 1
                    log.info("%s is back after %.1f s", self.name, t - self._lost_at)
                    self._lost_at = None
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                elif image.shape[2] == 4:
                    image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
                if self.mirror:
                    image = cv2.flip(image, 1)
                image = np.ascontiguousarray(image)
                self._slot.put(Frame(image=image, index=self._index, pts=None, t_capture=t))
                self._index += 1
        finally:
            with contextlib.suppress(Exception):  # releasing a broken device may fail too
                cap.release()
            state.done.set()


class PacedFileSource(_ThreadedSource):
    """A video file played in real time on a thread: a reproducible stand-in for a camera.

    Frames are emitted at the file's frame rate (or ``fps``) with ``t_capture`` set at the
    moment of emission, through the same latest-frame-wins ``read()`` as CameraSource, so a
    slow consumer sees drops exactly as it would with a real camera. If decoding falls behind
    the schedule the schedule slips rather than bursting frames out to catch up (a camera
    cannot deliver faster either). ``loop`` restarts at the end (pts keep increasing);
    otherwise ``finished`` becomes True and read() returns None once the last frame is taken.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | None = None,
        loop: bool = False,
        mirror: bool = False,
    ) -> None:
        self._video = VideoFileSource(path)
        self.path = self._video.path
        self.fps = float(fps) if fps else float(self._video.fps)
        if self.fps <= 0:
            raise VbgError(f"fps must be positive, got {self.fps}")
        self.loop = loop
        self.mirror = mirror
        self.width = self._video.width
        self.height = self._video.height
        self.frame_count = self._video.frame_count
        super().__init__()
        self.name = f"playing {self.path}"
        self.finished = False

    def start(self) -> PacedFileSource:
        if self.running or self.finished:
            return self
        self._stop.clear()
        self._slot.reopen()
        self._started = True
        self._thread = threading.Thread(target=self._run, name="vbg-paced-file", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.fps
        t_next: float | None = None
        pts_offset = 0.0
        try:
            while not self._stop.is_set():
                n_this_pass = 0
                for frame in self._video:
                    n_this_pass += 1
                    now = time.perf_counter()
                    if t_next is None or now - t_next > period:
                        t_next = now  # first frame, or fell behind: slip the schedule
                    elif self._stop.wait(max(0.0, t_next - now)):
                        return
                    if self._stop.is_set():
                        return
                    image = cv2.flip(frame.image, 1) if self.mirror else frame.image
                    pts = None if frame.pts is None else frame.pts + pts_offset
                    self._slot.put(
                        Frame(
                            image=image, index=self._index, pts=pts, t_capture=time.perf_counter()
                        )
                    )
                    self._index += 1
                    t_next += period
                if not self.loop or n_this_pass == 0:
                    break
                pts_offset += self._video.duration or n_this_pass * period
            self.finished = not self._stop.is_set()
        except BaseException as e:  # re-raised in read(), not swallowed
            self._error = e
        finally:
            self._video.close()
            self._slot.close()
