"""Per-stage timings: one timer used by the pipeline, `vbg bench` and the benchmarks."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

STAGES = ("capture", "preprocess", "inference", "smoothing", "compositing", "output")


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """{'p50': ..., 'p95': ..., 'p99': ..., 'mean': ..., 'n': ...} of a list of numbers.

    Uses linear interpolation between closest ranks (numpy's default), so p50 of an even
    count is the mean of the two middle values.
    """
    if len(values) == 0:
        raise ValueError("percentiles of an empty sequence")
    a = np.asarray(values, dtype=np.float64)
    out = {f"p{q:g}": float(np.percentile(a, q)) for q in qs}
    out["mean"] = float(a.mean())
    out["n"] = int(a.size)
    return out


class StageTimer:
    """Collects wall-clock durations (milliseconds) per named stage, per frame.

    with timer.stage("inference"): ...   # one duration for the current frame
    timer.end_frame()                     # closes the frame: also records "total"
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self._clock = clock
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._frame: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = self._clock()
        try:
            yield
        finally:
            self.add(name, (self._clock() - t0) * 1000.0)

    def add(self, name: str, ms: float) -> None:
        """Adds ms to the current frame's stage (a stage may run several times a frame)."""
        self._frame[name] = self._frame.get(name, 0.0) + ms

    def end_frame(self) -> dict[str, float]:
        """Records the current frame's stages and their sum as 'total'; returns them."""
        frame = self._frame
        self._frame = {}
        for name, ms in frame.items():
            self.samples[name].append(ms)
        if frame:
            total = sum(frame.values())
            self.samples["total"].append(total)
            frame = {**frame, "total": total}
        return frame

    @property
    def frames(self) -> int:
        return len(self.samples.get("total", []))

    def summary(self) -> dict[str, dict[str, float]]:
        """Percentiles per stage (ms)."""
        return {name: percentiles(v) for name, v in self.samples.items() if v}

    def reset(self) -> None:
        self.samples.clear()
        self._frame = {}
