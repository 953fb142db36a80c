"""Decode-ahead and encode-behind threads keep the offline loop's guarantees."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vbg import VbgError
from vbg.overlap import ReadAhead, WriteBehind


def test_read_ahead_keeps_order_and_raises_where_the_input_broke():
    def frames():
        yield from range(5)
        raise VbgError("decoding stopped at frame 5")

    got = []
    ahead = ReadAhead(frames(), depth=2)
    with pytest.raises(VbgError, match="frame 5"):
        for item in ahead:
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    ahead.close()


def test_read_ahead_close_stops_a_thread_blocked_on_a_full_queue():
    ahead = ReadAhead(iter(range(10_000)), depth=2)
    assert next(ahead) == 0
    ahead.close()
    assert not ahead._thread.is_alive()


class RecordingSink:
    def __init__(self, fail_at: int | None = None, delay: float = 0.0) -> None:
        self.path = "out.mp4"
        self.frames: list[tuple[np.ndarray, float | None]] = []
        self.frames_written = 0
        self.fail_at = fail_at
        self.delay = delay
        self.closed = self.aborted = False
        self.threads: set[str] = set()

    def write(self, frame, pts=None):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_at is not None and self.frames_written == self.fail_at:
            raise VbgError("encoding failed")
        self.frames.append((frame, pts))
        self.frames_written += 1

    def close(self, **kw):
        self.closed = kw or True

    def abort(self):
        self.aborted = True


def test_write_behind_copies_frames_writes_in_order_on_its_thread():
    sink = RecordingSink(delay=0.002)
    w = WriteBehind(sink, depth=2)
    buf = np.zeros((4, 4, 3), np.uint8)
    for i in range(6):
        buf[...] = i  # the processor reuses its buffer: the queue must hold copies
        w.write(buf, i / 30)
    assert w.frames_written == 6  # flushes first
    w.close(trim_audio=True)
    assert [int(f[0, 0, 0]) for f, _ in sink.frames] == list(range(6))
    assert [p for _, p in sink.frames] == [i / 30 for i in range(6)]
    assert sink.closed == {"trim_audio": True}
    assert sink.threads == {"vbg-encode"}


def test_write_behind_reports_an_encode_error_at_the_next_call():
    sink = RecordingSink(fail_at=2)
    w = WriteBehind(sink)
    with pytest.raises(VbgError, match="encoding failed"):
        for _ in range(50):
            w.write(np.zeros((2, 2, 3), np.uint8))
            time.sleep(0.001)
    w.abort()
    assert sink.aborted and not sink.closed


def test_write_behind_abort_drops_the_queue():
    sink = RecordingSink(delay=0.05)
    w = WriteBehind(sink, depth=8)
    for _ in range(8):
        w.write(np.zeros((2, 2, 3), np.uint8))
    w.abort()
    assert sink.aborted and sink.frames_written < 8
    assert not w._thread.is_alive()
