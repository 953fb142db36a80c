"""Soak: the live loop for a long time on a fake camera with planned faults.

Every cycle (--cycle seconds) the fake camera runs fine, then: a read that raises, a stall
(the read blocks), a size change, and the device vanishing and coming back (a reconnect).
The real loop (vbg.pipeline.run_live, CameraSource's reconnect logic, the real processor on
--model) feeds a virtual camera whose backend records the time of every frame. Reports
frames delivered, the longest gap on the virtual camera, RSS at start and end, threads and
open files, as JSON on stdout (and --json FILE).

    python -m benchmarks.soak --minutes 60                 # the hour-long soak
    python -m benchmarks.soak --minutes 2 --model CARD.json  # the test suite's version
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pyvirtualcam.camera import register_backend

from vbg.pipeline import LiveOptions, build_processor, run_live
from vbg.sources import CameraSource

BACKEND = "vbg-soak-timeline"
SIZE = (320, 240)


class TimelineBackend:
    """A pyvirtualcam backend that keeps the arrival time of every frame."""

    times: list[float] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: Any, **kw):
        TimelineBackend.times = []

    def send(self, frame: np.ndarray) -> None:
        TimelineBackend.times.append(time.perf_counter())

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "soak"

    def native_fourcc(self) -> None:
        return None


class FaultPlan:
    """Where in its cycle the fake camera is: (name, start, end) in seconds of the cycle."""

    def __init__(self, cycle: float) -> None:
        self.cycle = cycle
        c = cycle
        self.faults = [
            ("error", 0.20 * c, 0.20 * c + 0.2),
            ("stall", 0.40 * c, 0.40 * c + 1.5),
            ("resize", 0.60 * c, 0.70 * c),
            ("gone", 0.85 * c, 0.85 * c + 2.0),
        ]
        self.t0 = time.perf_counter()

    def now(self) -> str | None:
        t = (time.perf_counter() - self.t0) % self.cycle
        return next((name for name, a, b in self.faults if a <= t < b), None)


class FaultyCapture:
    def __init__(self, plan: FaultPlan, fps: float) -> None:
        self.plan, self.period = plan, 1.0 / fps
        self.opened = plan.now() != "gone"
        rng = np.random.default_rng(0)
        self.frame = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        self.big = cv2.resize(self.frame, (SIZE[0] * 2, SIZE[1] * 2))

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.period)
        fault = self.plan.now()
        if fault == "error":
            raise cv2.error("VIDIOC_DQBUF: No such device")
        while self.plan.now() == "stall":
            time.sleep(0.05)
        if fault == "gone":
            return False, None
        return True, (self.big if fault == "resize" else self.frame).copy()

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: SIZE[0], cv2.CAP_PROP_FRAME_HEIGHT: SIZE[1]}.get(
            prop, 0.0
        )

    def release(self) -> None:
        pass


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


class StopAfter:
    """An action source that quits after `seconds`, sampling resources on the way."""

    def __init__(self, seconds: float) -> None:
        self.t_end = time.perf_counter() + seconds
        self.samples: list[tuple[float, float, int, int]] = []
        self._next = 0.0

    def poll_actions(self) -> list[str]:
        now = time.perf_counter()
        if now >= self._next:
            self._next = now + 5.0
            self.samples.append((now, rss_mb(), threading.active_count(), open_files()))
        return ["quit"] if now >= self.t_end else []


def soak(minutes: float, model: str | None, fps: float, cycle: float) -> dict[str, Any]:
    register_backend(BACKEND, TimelineBackend)
    plan = FaultPlan(cycle)
    cam = CameraSource(
        0,
        size=SIZE,
        fps=fps,
        capture_factory=lambda spec: FaultyCapture(plan, fps),
        stall_s=0.5,
        backoff=(0.1, 0.5),
    )
    proc = build_processor(model, engine="onnxruntime", threads=1, background="blur")
    stopper = StopAfter(minutes * 60)
    opts = LiveOptions(
        outputs=["vcam"],
        vcam_backend=BACKEND,
        fps=fps,
        output_size=SIZE,
        action_sources=[stopper],
    )
    start = (rss_mb(), threading.active_count(), open_files())
    try:
        res = run_live(cam, processor=proc, options=opts)
    finally:
        proc.close()
    end = (rss_mb(), threading.active_count(), open_files())
    times = np.array(TimelineBackend.times)
    gaps = np.diff(times) if len(times) > 1 else np.array([0.0])
    # The steady part: RSS once warm (after the first minute or the first sample) vs the end.
    warm = [s for s in stopper.samples if s[0] - stopper.samples[0][0] >= 60] or stopper.samples
    return {
        "minutes": minutes,
        "fps_target": fps,
        "frames_delivered": int(len(times)),
        "frames_processed": res.frames,
        "filler_frames": res.filler,
        "delivered_fps": float(len(times) / (times[-1] - times[0])) if len(times) > 1 else 0.0,
        "longest_gap_ms": float(gaps.max() * 1000),
        "gap_limit_ms": 2000.0 / fps,
        "gaps_over_limit": int((gaps > 2.0 / fps).sum()),
        # Where the long gaps were (s since the first frame; the fault cycle says which).
        "long_gaps_at_s": [
            round(float(times[i] - times[0]), 2) for i in np.flatnonzero(gaps > 2.0 / fps)[:20]
        ],
        "cycle_s": cycle,
        "faults": [(name, round(a, 2), round(b, 2)) for name, a, b in plan.faults],
        "reconnects": cam.reconnects,
        "outages": cam.outages,
        "rss_mb_start": start[0],
        "rss_mb_warm": warm[0][1],
        "rss_mb_end": end[0],
        "threads_start": start[1],
        "threads_end": end[1],
        "open_files_start": start[2],
        "open_files_end": end[2],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--model", default=None, help="model card (default: the bundled model)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--cycle", type=float, default=60.0, help="seconds per fault cycle")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    report = soak(args.minutes, args.model, args.fps, args.cycle)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if report["gaps_over_limit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
