"""`vbg bench`: throughput and per-stage latency of the real pipeline, per engine.

What is measured is what a live call runs per frame, minus the camera: the frame fetch
("capture": the frames are decoded up front, so decoding is excluded), the FrameProcessor
(preprocess, inference, smoothing, compositing) and the virtual-camera sink up to the device
("output": frame checks and pyvirtualcam's send of the BGR frame, with a null
device standing in for v4l2loopback). The timer is the pipeline's own StageTimer.

Honest numbers on a noisy machine come from the method, not from luck:
- warm-up frames first (allocations, engine autotuning, caches), not counted;
- many frames, reported as p50/p95/p99, never as one mean;
- engines compared in the same run, interleaved in blocks of frames whose order rotates
  every round (A B, B A, A B, ...), so a burst of load from elsewhere hits all of them alike;
- the CPU model, core count, threads and load average printed with the numbers.

The measuring functions here are also what the scripts in benchmarks/ are built on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vbg import VbgError
from vbg.timing import STAGES, StageTimer, percentiles

SYNTHETIC_FPS = 30.0
SYNTHETIC_FRAMES = 24  # distinct synthetic frames, looped (about 66 MB at 1920x1080)
NULL_VCAM_BACKEND = "vbg-bench-null"
DEFAULT_BLOCK = 25  # frames per engine per turn when engines are interleaved


# ---------------------------------------------------------------------------- inputs


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720) (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VbgError(f"size must look like 1280x720, not {text!r}") from None
    if w < 16 or h < 16:
        raise VbgError(f"size {text} is too small (at least 16x16)")
    return w, h


def synthetic_frames(
    width: int, height: int, count: int = SYNTHETIC_FRAMES, seed: int = 0
) -> list[np.ndarray]:
    """A person-like figure (head, neck, shoulders, torso) swaying over a textured room.

    The texture matters: a flat background would make any edge-aware step unrealistically
    cheap or easy. Deterministic for a given seed.
    """
    import cv2

    rng = np.random.default_rng(seed)
    # Low-frequency colour blotches (walls, furniture) plus fine noise (sensor, texture).
    blotches = rng.integers(40, 220, size=(max(2, height // 60), max(2, width // 60), 3))
    room = cv2.resize(blotches.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):  # a few hard edges: shelves, door frames
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(width // 10, width // 3)), y0 + int(rng.integers(4, 12))
        colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
        cv2.rectangle(room, (x0, y0), (x1, y1), colour, -1)
    noise = rng.normal(0.0, 6.0, size=room.shape)
    room = np.clip(room.astype(np.float32) + noise, 0, 255).astype(np.uint8)

    frames = []
    s = min(width, height) / 480.0  # figure scale
    skin, shirt = (120, 150, 200), (150, 60, 40)  # BGR
    for i in range(count):
        phase = 2.0 * np.pi * i / max(1, count)
        cx = int(width * (0.5 + 0.12 * np.sin(phase)))
        cy = int(height * (0.42 + 0.02 * np.cos(2 * phase)))
        f = room.copy()
        # Torso (a wide ellipse cut by the frame bottom), neck, head.
        cv2.ellipse(
            f,
            (cx, cy + int(230 * s)),
            (int(150 * s), int(140 * s)),
            0,
            0,
            360,
            shirt,
            -1,
            cv2.LINE_AA,
        )
        cv2.rectangle(
            f, (cx - int(22 * s), cy + int(40 * s)), (cx + int(22 * s), cy + int(100 * s)), skin, -1
        )
        cv2.ellipse(f, (cx, cy), (int(55 * s), int(70 * s)), 0, 0, 360, skin, -1, cv2.LINE_AA)
        cv2.ellipse(
            f,
            (cx, cy - int(40 * s)),
            (int(58 * s), int(38 * s)),
            0,
            180,
            360,
            (30, 30, 40),
            -1,
            cv2.LINE_AA,
        )
        frames.append(np.ascontiguousarray(f))
    return frames


def load_frames(
    path: str | Path, count: int, size: tuple[int, int] | None = None
) -> tuple[list[np.ndarray], float]:
    """Up to `count` decoded frames of a video (or the one frame of an image) and its rate.

    Decoded before timing starts, so decoding is not part of any measurement; `size`
    (width, height) resizes them, e.g. to benchmark 1080p from a 540p clip.
    """
    import cv2

    from vbg.sources import open_input

    src = open_input(path)
    frames: list[np.ndarray] = []
    try:
        for fr in src:
            img = fr.image
            if size is not None and (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(img))
            if len(frames) >= count:
                break
    finally:
        src.close()
    if not frames:
        raise VbgError(f"no frames decoded from {path}")
    fps = float(src.fps) if getattr(src, "fps", None) else SYNTHETIC_FPS
    return frames, fps


# ---------------------------------------------------------------------------- machine


def _cpuinfo() -> tuple[str, int | None]:
    """(CPU model, physical cores) from /proc/cpuinfo; ('unknown', None) elsewhere."""
    model, cores = platform.processor() or "unknown", None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, cores
    seen: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model in ("unknown", "", platform.machine()):
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not key and phys is not None and core is not None:
            seen.add((phys, core))
            phys = core = None
    if phys is not None and core is not None:
        seen.add((phys, core))
    return model, (len(seen) or None)


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """What the numbers came from: CPU, cores, threads, load, library versions."""
    import cv2

    model, physical = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable,
        "engine_threads": threads if threads is not None else "engine default",
        "opencv_threads": cv2.getNumThreads(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    with contextlib.suppress(OSError):  # no load average on some platforms
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


# ---------------------------------------------------------------------------- output sink


class _NullCameraBackend:
    """A pyvirtualcam backend that accepts frames and drops them: the device's own cost
    (v4l2loopback's copy into the kernel) is not ours to measure, the sink's work is."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device, **kw) -> None:
        self._device = device or NULL_VCAM_BACKEND
        self._fourcc = fourcc

    def send(self, frame: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return self._fourcc


def null_vcam_sink(width: int, height: int, fps: float):
    """vbg's VirtualCameraSink on a null pyvirtualcam device."""
    import pyvirtualcam

    from vbg.sinks import VirtualCameraSink

    pyvirtualcam.register_backend(NULL_VCAM_BACKEND, _NullCameraBackend)
    return VirtualCameraSink(width, height, fps, backend=NULL_VCAM_BACKEND)


# ---------------------------------------------------------------------------- measuring


class Processor(Protocol):
    """What is timed: vbg's FrameProcessor, or benchmarks/peers.py's MediaPipe peer."""

    timer: StageTimer

    def process(self, frame_bgr: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


@dataclass
class Contender:
    """One processor under test with its sink and what was measured of it."""

    name: str
    processor: Processor
    sink: Any  # vbg.sinks.Sink
    frames: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    late_frames: int = 0  # paced runs: frames that finished after the next one was due
    frame_ms: list[float] = field(default_factory=list)  # wall time of each whole frame

    @property
    def timer(self) -> StageTimer:
        return self.processor.timer


def schedule(names: Sequence[str], n_frames: int, block: int) -> list[tuple[str, int, int]]:
    """The interleaving: [(name, start, stop), ...] covering frames [0, n_frames) once per name.

    Frames go in blocks; every name runs every block, and the order rotates each block
    (A B, B A, A B ... for two; A B C, B C A, C A B ... for three), so each name runs in
    each position equally often: drift in machine load and "who ran first" effects (warm
    caches) spread evenly instead of favouring one contender.
    """
    if block < 1:
        raise ValueError("block must be >= 1")
    out = []
    k = len(names)
    for r, start in enumerate(range(0, n_frames, block)):
        stop = min(start + block, n_frames)
        for j in range(k):
            out.append((names[(r + j) % k], start, stop))
    return out


def run_frame(c: Contender, frame: np.ndarray, pts: float | None = None) -> float:
    """One frame through processor and sink, every stage timed; returns its wall ms."""
    timer = c.timer
    t0 = time.perf_counter()
    with timer.stage("capture"):
        # A file input's capture is handing out the decoded frame: what a camera source's
        # read() does once its thread has the image (decode is excluded by design).
        img = frame
    out = c.processor.process(img)
    with timer.stage("output"):
        c.sink.write(out, pts)
    timer.end_frame()
    return (time.perf_counter() - t0) * 1000.0


def run_block(
    c: Contender,
    frames: Sequence[np.ndarray],
    start: int,
    stop: int,
    *,
    pace_fps: float | None = None,
    record: bool = True,
) -> None:
    """Frames start..stop-1 (indices wrap around `frames`) through one contender.

    pace_fps: sleep so frames start no faster than this rate, as from a camera (the sleep
    is not counted as any stage; it is in wall time, which is why paced FPS ~= pace rate).
    """
    period = 1.0 / pace_fps if pace_fps else 0.0
    w0, c0 = time.perf_counter(), time.process_time()
    due = w0
    for i in range(start, stop):
        if period:
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
        ms = run_frame(c, frames[i % len(frames)], pts=i / (pace_fps or SYNTHETIC_FPS))
        if period:
            if time.perf_counter() > due + period:
                c.late_frames += record
            due += period
        if record:
            c.frame_ms.append(ms)
    if record:
        # Paced: a block of n frames occupies n frame slots, even if the last one finished
        # early; so paced FPS is the delivered rate, at most the pace rate.
        end = max(time.perf_counter(), due) if period else time.perf_counter()
        c.wall_s += end - w0
        c.cpu_s += time.process_time() - c0
        c.frames += stop - start


def warm_up(contenders: Iterable[Contender], frames: Sequence[np.ndarray], n: int) -> None:
    """n untimed frames per contender, then every timer and state is cleared."""
    for c in contenders:
        if n > 0:
            run_block(c, frames, 0, n, record=False)
        c.timer.reset()
        c.processor.reset()


def measure(
    contenders: Sequence[Contender],
    frames: Sequence[np.ndarray],
    *,
    n_frames: int,
    warmup: int,
    block: int = DEFAULT_BLOCK,
    pace_fps: float | None = None,
    on_block: Callable[[str, int, int], None] | None = None,
) -> None:
    """Warm-up, then n_frames per contender in rotating interleaved blocks (see schedule)."""
    by_name = {c.name: c for c in contenders}
    if len(by_name) != len(contenders):
        raise ValueError("contender names must be unique")
    warm_up(contenders, frames, warmup)
    for name, start, stop in schedule(list(by_name), n_frames, block):
        run_block(by_name[name], frames, start, stop, pace_fps=pace_fps)
        if on_block is not None:
            on_block(name, start, stop)


def result_of(c: Contender, **extra: Any) -> dict[str, Any]:
    """JSON-ready numbers of one contender (latencies in ms)."""
    stages = c.timer.summary()
    ordered = {s: stages[s] for s in (*STAGES, "total") if s in stages}
    ordered.update({s: v for s, v in stages.items() if s not in ordered})
    return {
        "name": c.name,
        **extra,
        "frames": c.frames,
        "fps": c.frames / c.wall_s if c.wall_s > 0 else float("nan"),
        "wall_s": c.wall_s,
        "cpu_ms_per_frame": 1000.0 * c.cpu_s / c.frames if c.frames else float("nan"),
        # >100% means several cores busy (engine threads + OpenCV threads)
        "cpu_percent": 100.0 * c.cpu_s / c.wall_s if c.wall_s > 0 else float("nan"),
        "late_frames": c.late_frames,
        "end_to_end_ms": percentiles(c.frame_ms) if c.frame_ms else None,
        "outside_inference_ms": outside_inference(c.timer),
        "stages_ms": ordered,
    }


def outside_inference(timer: StageTimer) -> dict[str, float] | None:
    """Percentiles of each frame's timed stages minus its inference: everything vbg does
    around the network (None unless every frame has both)."""
    total, inf = timer.samples.get("total", []), timer.samples.get("inference", [])
    if not total or len(total) != len(inf):
        return None
    return percentiles(np.subtract(total, inf))


# ---------------------------------------------------------------------------- report


def _fmt(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def format_table(results: Sequence[dict[str, Any]], *, label: str = "engine") -> str:
    """Plain-text table: one row per result, FPS, end-to-end and per-stage p50/p95 (ms)."""
    stages = [s for s in STAGES if any(s in r["stages_ms"] for r in results)]
    head = [
        label,
        "size",
        "FPS",
        "e2e p50",
        "p95",
        "p99",
        "non-inference p50/p95",
        *[f"{s} p50/p95" for s in stages],
        "CPU ms/f",
    ]
    rows = []
    for r in results:
        e2e = r["end_to_end_ms"] or {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        row = [
            r["name"],
            r.get("input_size", ""),
            f"{r['fps']:.1f}",
            _fmt(e2e["p50"]),
            _fmt(e2e["p95"]),
            _fmt(e2e["p99"]),
        ]
        out_inf = r.get("outside_inference_ms")
        row.append(f"{_fmt(out_inf['p50'])}/{_fmt(out_inf['p95'])}" if out_inf else "-")
        for s in stages:
            st = r["stages_ms"].get(s)
            row.append(f"{_fmt(st['p50'])}/{_fmt(st['p95'])}" if st else "-")
        row.append(_fmt(r["cpu_ms_per_frame"]))
        rows.append([str(x) for x in row])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_markdown(results: Sequence[dict[str, Any]], *, label: str = "engine") -> str:
    """The same table in Markdown (for README and benchmarks/results)."""
    text = format_table(results, label=label)
    lines = [[c for c in line.split("  ") if c.strip()] for line in text.splitlines()]
    md = ["| " + " | ".join(c.strip() for c in lines[0]) + " |"]
    md.append("|" + "|".join(" --- " for _ in lines[0]) + "|")
    md += ["| " + " | ".join(c.strip() for c in row) + " |" for row in lines[1:]]
    return "\n".join(md)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically: a half-written report is worse than none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------- vbg bench


BENCH_EPILOG = """\
examples:
  vbg bench                                      # every engine, synthetic 1280x720
  vbg bench --input talk.mp4 --size 1280x720 --engine onnxruntime openvino --json b.json
  vbg bench --synthetic 1920x1080 --paced --frames 600

Timed per frame: capture (handing out a decoded frame; decoding is excluded),
preprocess, inference, smoothing (temporal + upsampling/feathering), compositing and
output (the virtual-camera sink on a null device). Engines run interleaved in blocks of
frames, the order rotating each round, after warm-up. Reported: FPS, per-stage and
end-to-end p50/p95/p99 in ms, process CPU time per frame, and the machine."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`vbg bench`'s flags (vbg.cli calls this only when the bench command is used)."""
    p.epilog = BENCH_EPILOG
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--input",
        metavar="FILE",
        default=None,
        help="video or image; decoded up front (decode is not timed) and looped",
    )
    src.add_argument(
        "--synthetic",
        metavar="WxH",
        default=None,
        help="synthetic frames of this size: a moving figure on a textured background "
        "(default when no --input: 1280x720)",
    )
    p.add_argument("--size", metavar="WxH", default=None, help="resize --input frames to this size")
    p.add_argument(
        "--engine",
        nargs="+",
        metavar="NAME",
        default=None,
        help="engines to compare, or 'all' (default: every engine available here)",
    )
    p.add_argument(
        "--frames", type=int, default=300, metavar="N", help="timed frames per engine (default 300)"
    )
    p.add_argument(
        "--warmup", type=int, default=30, metavar="N", help="untimed frames first (default 30)"
    )
    p.add_argument(
        "--block",
        type=int,
        default=DEFAULT_BLOCK,
        metavar="N",
        help=f"frames per engine per turn when interleaving engines (default {DEFAULT_BLOCK})",
    )
    p.add_argument(
        "--paced",
        action="store_true",
        help="pace frames at the file's rate (synthetic: 30 FPS) like a camera; default: "
        "as fast as possible",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="engine intra-op threads (default: the engine's)",
    )
    p.add_argument(
        "--model", metavar="CARD.json", default=None, help="model card (default: the bundled model)"
    )
    p.add_argument(
        "--background",
        "-b",
        metavar="BG",
        default=None,
        help="background to composite (default: the first bundled image, as in a real call)",
    )
    p.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the network on a crop that follows the person, as vbg run does (default: on)",
    )
    p.add_argument(
        "--json", metavar="OUT.json", default=None, help="also write the results as JSON"
    )


def select_engines(requested: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """(engines to run, {engine: why skipped})."""
    from vbg.engines import available_engines, engine_names

    avail = available_engines()
    if not requested or list(requested) == ["all"]:
        skipped = {n: "not available here" for n in engine_names() if n not in avail}
        if not avail:
            raise VbgError("no inference engine is available here; pip install onnxruntime")
        return avail, skipped
    names = []
    for n in requested:
        if n == "all":
            raise VbgError("'all' cannot be combined with engine names")
        if n == "auto":
            n = avail[0] if avail else n
        if n not in names:
            names.append(n)
    return names, {}


def default_background() -> str:
    """The first bundled background image, so compositing does its usual image blend."""
    from vbg.backgrounds import background_names

    names = background_names()
    return names[0] if names else "color:#00b140"


def prepare_frames(args: argparse.Namespace, count: int) -> tuple[list[np.ndarray], float, str]:
    """(frames, their rate, a description of the input)."""
    if args.input:
        size = parse_size(args.size) if args.size else None
        frames, fps = load_frames(args.input, count, size)
        return frames, fps, str(args.input)
    if args.size:
        raise VbgError("--size resizes --input frames; with --synthetic give the size there")
    w, h = parse_size(args.synthetic or "1280x720")
    return synthetic_frames(w, h, min(count, SYNTHETIC_FRAMES)), SYNTHETIC_FPS, "synthetic"


def build_contender(
    name: str,
    engine: str,
    *,
    model: str | Path | None,
    size: tuple[int, int],
    background: str,
    threads: int | None,
    fps: float,
    follow: bool = True,
) -> Contender:
    """vbg's real FrameProcessor for one engine, at one frame size (width, height), set up
    as `vbg run` sets it up (a new crop size compiles in the background)."""
    from vbg.pipeline import FrameProcessor, build_processor

    w, h = size
    proc = build_processor(
        model, engine=engine, threads=threads, background=background, size=(h, w), follow=follow
    )
    if isinstance(proc, FrameProcessor):
        proc.wait_for_compile = False
    return Contender(name=name, processor=proc, sink=null_vcam_sink(w, h, fps))


def close_contender(c: Contender) -> None:
    c.sink.close()
    close = getattr(c.processor, "close", None)
    if close is not None:
        close()


def model_info(c: Contender) -> dict[str, Any]:
    """Model name, card path, and input size at this frame size, of a vbg processor."""
    seg = getattr(c.processor, "segmenter", None)
    card = getattr(seg, "card", None)
    if card is None:
        return {}
    return {"model": card.name, "model_card": str(card.path) if card.path else None}


def bench(args: argparse.Namespace, out=None) -> dict[str, Any]:
    """Runs `vbg bench` and returns the report (printing the table to `out`)."""
    out = out if out is not None else sys.stdout
    if args.frames < 1 or args.warmup < 0 or args.block < 1:
        raise VbgError("--frames and --block must be >= 1 and --warmup >= 0")
    engines, skipped = select_engines(args.engine)
    frames, fps, source = prepare_frames(args, args.frames + args.warmup)
    h, w = frames[0].shape[:2]
    background = args.background or default_background()
    pace = fps if args.paced else None
    contenders = []
    try:
        for e in engines:
            contenders.append(
                build_contender(
                    e,
                    e,
                    model=args.model,
                    size=(w, h),
                    background=background,
                    threads=args.threads,
                    fps=fps,
                    follow=args.follow,
                )
            )
        measure(
            contenders,
            frames,
            n_frames=args.frames,
            warmup=args.warmup,
            block=args.block,
            pace_fps=pace,
        )
        results = []
        for c in contenders:
            seg = getattr(c.processor, "segmenter", None)
            mh, mw = seg.input_size(h, w) if seg is not None else (None, None)
            results.append(
                result_of(
                    c,
                    engine=getattr(c.processor, "engine_name", c.name),
                    **model_info(c),
                    input_size=f"{w}x{h}",
                    model_input=f"{mw}x{mh}" if mh else None,
                )
            )
    finally:
        for c in contenders:
            close_contender(c)
    report = {
        "benchmark": "vbg bench",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(args.threads),
        "config": {
            "input": source,
            "input_size": f"{w}x{h}",
            "frames": args.frames,
            "warmup": args.warmup,
            "block": args.block,
            "paced": bool(args.paced),
            "pace_fps": pace,
            "background": background,
            "threads": args.threads,
            "model": str(args.model) if args.model else "default",
            "follow": bool(args.follow),
        },
        "results": results,
        "skipped": skipped,
    }
    m = report["machine"]
    pacing = f"paced at {pace:.0f} FPS" if pace else "unpaced"
    print(
        f"machine: {m['cpu']}, {m['usable_cores']} cores usable, load {m.get('load_average_1m', '?')}"
        f" | input {source} ({w}x{h}) | {args.frames} frames (+{args.warmup} warm-up)"
        f" | {pacing} | background {background}",
        file=out,
    )
    print(format_table(results), file=out)
    print("latencies in ms; e2e = whole frame wall time (capture to output)", file=out)
    for n, why in skipped.items():
        print(f"skipped {n}: {why}", file=out)
    if args.json:
        write_json(args.json, report)
    return report


def run(args: argparse.Namespace) -> int:
    """Entry point of `vbg bench` (vbg.cli)."""
    bench(args)
    return 0
