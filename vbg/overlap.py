"""Decode ahead and encode behind: `vbg process` keeps its three stages busy at once.

Processing a recorded video is decode -> process -> encode per frame. Done in turn, the
GPU (or the CPU's inference threads) waits while PyAV decodes and x264 encodes; with the
frame on the GPU, decoding and encoding are most of the time. `ReadAhead` decodes on its
own thread a few frames ahead, `WriteBehind` encodes on another thread a few frames
behind, each through a small bounded queue (so memory stays a few frames, and a slow stage
slows the others instead of filling memory).

Errors keep their meaning: a decode error (a truncated input) is raised where the main
loop asks for that frame, an encode error at the next write or at close; closing or
aborting stops the thread and nothing is left running.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

DEPTH = 4  # frames in flight per queue: enough to smooth out jitter, little memory
_POLL_S = 0.1


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead:
    """Iterates `items` on a background thread, up to `depth` items ahead."""

    def __init__(self, items: Iterable[Any], depth: int = DEPTH, name: str = "vbg-decode") -> None:
        self._source = iter(items)
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_End())
        except BaseException as e:  # handed to the consumer, raised there
            self._put(_Failed(e))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._q.get()
        if isinstance(item, _End):
            self._done = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._done = True
            raise item.error
        return item

    def close(self) -> None:
        """Stops the thread (it may be blocked on a full queue: drained here)."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get(timeout=_POLL_S)
            self._thread.join(timeout=_POLL_S)


class WriteBehind:
    """A sink whose write() queues a copy of the frame and returns; a thread writes.

    Has the sink interface the offline loop uses: write, close(**kw), abort, path,
    frames_written (counted once the queue is flushed).
    """

    def __init__(self, sink: Any, depth: int = DEPTH, name: str = "vbg-encode") -> None:
        self.sink = sink
        self.path = sink.path
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None or self._stop.is_set():
                    return
                if self._error is None:
                    frame, pts = item
                    self.sink.write(frame, pts)
            except BaseException as e:  # raised in the main thread at its next call
                self._error = e
            finally:
                self._q.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        self._raise()
        # A copy: the processor reuses its output buffer for the next frame.
        self._q.put((np.array(frame_bgr, copy=True), pts))

    def flush(self) -> None:
        """Waits until every queued frame is written (or failed)."""
        if self._thread.is_alive():
            self._q.join()

    @property
    def frames_written(self) -> int:
        self.flush()
        return int(self.sink.frames_written)

    def _finish_thread(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()

    def close(self, **kwargs: Any) -> None:
        self.flush()
        self._finish_thread()
        self._raise()
        self.sink.close(**kwargs)

    def abort(self) -> None:
        self._stop.set()
        # Drop what is queued; the thread sees the stop flag at its next item.
        while True:
            try:
                self._q.get_nowait()
                self._q.task_done()
            except queue.Empty:
                break
        self._finish_thread()
        self._error = None
        self.sink.abort()
