"""A video (MP4, WebM, GIF, ...) as the background: it loops behind the person.

A thread decodes ahead and fits each frame to the output size (cover-fit, the same framing
as images), into a small bounded queue; the compositor asks for the frame at a time t on
the output's timeline (`vbg process`: the output frame's timestamp, so the result does not
depend on speed; `vbg run`: the wall clock since the first frame). The background keeps
its own frame rate: a 24 fps clip behind a 30 fps camera shows each of its frames for
1.25 output frames on average, and it loops seamlessly at its duration.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np

from vbg import VbgError
from vbg.framing import Framing, fit_background

QUEUE_FRAMES = 8
WAIT_S = 5.0  # how long the offline path waits for the decoder before giving up


def probe_video(path: str | Path) -> tuple[int, int, float]:
    """(width, height, frame rate) of a video's first stream; VbgError if unreadable."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise VbgError(f"background video {path} has no video stream")
            s = c.streams.video[0]
            rate = float(s.average_rate or s.guessed_rate or 25)
            frame = next(c.decode(s), None)
            if frame is None:
                raise VbgError(f"background video {path} has no frames")
            return frame.width, frame.height, rate
    except av.FFmpegError as e:
        raise VbgError(f"cannot read background video {path}: {' '.join(str(e).split())}") from e


class VideoBackground:
    """Frames of a looping video, fitted to h x w, by time."""

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        *,
        framing: Framing | None = None,
        focal: tuple[float, float] | None = None,
        box: tuple[float, float] | None = None,
    ) -> None:
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.fps = probe_video(self.path)[2]
        self._framing, self._focal, self._box = framing or Framing(), focal, box
        self._queue: queue.Queue[tuple[float, np.ndarray] | BaseException] = queue.Queue(
            QUEUE_FRAMES
        )
        self._stop = threading.Event()
        self._current: tuple[float, np.ndarray] | None = None
        self._next: tuple[float, np.ndarray] | None = None
        self._t0: float | None = None
        self.frames_decoded = 0
        self.duration: float | None = None  # known after the first pass through the clip
        self._thread: threading.Thread | None = None
        self._start()

    def _start(self) -> None:
        self._stop = threading.Event()
        self._queue = queue.Queue(QUEUE_FRAMES)
        self._current = self._next = None
        self._thread = threading.Thread(target=self._decode, name="vbg-bg-video", daemon=True)
        self._thread.start()

    # --- decoding thread ------------------------------------------------------------

    def _decode(self) -> None:
        import av

        offset = 0.0
        h, w = self.size
        try:
            while not self._stop.is_set():
                last_end = 0.0
                with av.open(str(self.path)) as c:
                    s = c.streams.video[0]
                    s.thread_type = "AUTO"
                    first: float | None = None
                    for frame in c.decode(s):
                        t = float(frame.time) if frame.time is not None else last_end
                        first = t if first is None else first
                        dur = float(frame.duration * s.time_base) if frame.duration else 0.0
                        last_end = max(last_end, t - first + (dur or 1.0 / self.fps))
                        img = frame.to_ndarray(format="bgr24")
                        fitted = fit_background(
                            img, h, w, focal=self._focal, framing=self._framing, box=self._box
                        )
                        if not self._put((offset + t - first, fitted)):
                            return
                        self.frames_decoded += 1
                if last_end <= 0:
                    raise VbgError(f"background video {self.path} has no frames")
                self.duration = last_end
                offset += last_end  # the next loop continues the timeline
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def _put(self, item: tuple[float, np.ndarray] | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # --- consumer ---------------------------------------------------------------------

    def _take(self, block: bool) -> tuple[float, np.ndarray] | None:
        try:
            item = self._queue.get(timeout=WAIT_S) if block else self._queue.get_nowait()
        except queue.Empty:
            if block:
                raise VbgError(f"decoding background video {self.path} stalled") from None
            return None
        if isinstance(item, BaseException):
            self._stop.set()
            if isinstance(item, VbgError):
                raise item
            raise VbgError(f"cannot decode background video {self.path}: {item}") from item
        return item

    def frame(self, t: float | None = None) -> np.ndarray:
        """The fitted frame showing at time t (seconds on the output's timeline); None: the
        wall clock since the first call (live), which never waits for the decoder."""
        offline = t is not None
        if offline and self._current is not None and t < self._current[0] - 1e-6:
            self.close()  # the timeline restarted (a new input video): from the top
            self._start()
        if t is None:
            now = time.perf_counter()
            self._t0 = now if self._t0 is None else self._t0
            t = now - self._t0
        if self._current is None:
            self._current = self._take(block=True)
        while True:
            if self._next is None:
                self._next = self._take(block=offline)
                if self._next is None:
                    break  # live: the decoder is behind; show the current frame again
            if self._next[0] > t + 1e-6:
                break
            self._current, self._next = self._next, None
        assert self._current is not None
        return self._current[1]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
