"""Glass-to-glass latency of the live loop, with a video file standing in for the camera.

`vbg run`'s own loop (vbg.pipeline.run_live, with its threads) reads a PacedFileSource: the
sample clip played at 30 FPS on its own thread, newest frame wins, looped, exactly as a
camera delivers frames. Each composited frame goes to the virtual-camera sink (vbg's
VirtualCameraSink on a null pyvirtualcam device: BGR->RGB and the hand-off are timed, the
kernel's copy is not), then to a sink that notes the time it leaves (--sink null: only that).

Glass-to-glass = time from the frame entering the program (the source hands it over) to the
composited frame leaving the last sink, as run_live records it. Also reported: the rate at
which frames left the sink (delivered FPS), frames the source dropped because the loop was
still busy, and the per-stage timings of the same run. The first --warmup frames are left
out of the statistics (engine warm-up).

    python -m benchmarks.glass_to_glass --model assets/models/default.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError
from vbg import bench as vb
from vbg.timing import STAGES, percentiles

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


class TimestampSink:
    """The last sink: notes when each frame leaves, and its pts (seconds since the first
    frame), from which frames skipped by the latest-frame-wins source can be counted."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []
        self.pts: list[float] = []

    def write(self, frame_bgr: np.ndarray, pts: float | None = None) -> None:
        self.sent_at.append(time.perf_counter())
        self.pts.append(float("nan") if pts is None else pts)

    def close(self) -> None:
        pass


def delivered_fps(times: Sequence[float]) -> float:
    """Frames per second from the times frames left the sink (n-1 intervals)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def skipped_frames(pts: Sequence[float], fps: float) -> int:
    """Source frames that never reached the sink, from the gaps between delivered pts."""
    gaps = np.diff(np.asarray(pts, dtype=np.float64)) * fps
    gaps = gaps[np.isfinite(gaps)]
    return int(np.maximum(np.rint(gaps) - 1, 0).sum())


def clip_at_size(path: Path, size: tuple[int, int], tmp: Path) -> Path:
    """The clip itself when it already has this size, else a resized copy in `tmp`
    (re-encoded once, before the run: resizing during the run would add to the latency)."""
    import cv2

    from vbg.sinks import VideoFileSink
    from vbg.sources import VideoFileSource

    src = VideoFileSource(path)
    if (src.width, src.height) == size:
        return path
    out = tmp / f"{path.stem}-{size[0]}x{size[1]}.mp4"
    sink = VideoFileSink(out, fps=src.fps, width=size[0], height=size[1], crf=18)
    try:
        for fr in src:
            sink.write(cv2.resize(fr.image, size, interpolation=cv2.INTER_AREA), fr.pts)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.glass_to_glass",
        description="Glass-to-glass latency of the live loop at camera pacing.",
    )
    p.add_argument("--input", type=Path, default=None, help="clip (default: the sample clip)")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--fps", type=float, default=30.0, help="camera rate (default 30)")
    p.add_argument("--frames", type=int, default=600, help="frames to run (default 600, 20 s)")
    p.add_argument("--warmup", type=int, default=30, help="first frames left out (default 30)")
    p.add_argument("--sink", choices=("vcam", "null"), default="vcam", help="default: vcam")
    p.add_argument("--model", default=None, help="model card (default: the bundled model)")
    p.add_argument("--engine", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--background", default=None, help="default: the first bundled image")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--tag", default=None, help="file name stem (default glass_to_glass-WxH)")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vbg.assets import sample_clip_path
    from vbg.pipeline import GLASS_TO_GLASS, build_processor, run_live
    from vbg.sources import PacedFileSource

    if args.frames <= args.warmup + 1:
        raise VbgError("--frames must exceed --warmup by at least 2")
    w, h = vb.parse_size(args.size)
    background = args.background or vb.default_background()
    clip = Path(args.input or sample_clip_path())
    with tempfile.TemporaryDirectory(prefix="vbg-g2g-") as tmp:
        played = clip_at_size(clip, (w, h), Path(tmp))
        source = PacedFileSource(played, fps=args.fps, loop=True)
        stamps = TimestampSink()
        outputs: list[Any] = [stamps]
        if args.sink == "vcam":
            # vbg's virtual-camera sink on a null device, before the time stamp.
            outputs.insert(0, vb.null_vcam_sink(w, h, args.fps))
        proc = build_processor(
            args.model,
            engine=args.engine,
            threads=args.threads,
            background=background,
            size=(h, w),
        )
        try:
            result = run_live(
                source,
                outputs=outputs,
                backgrounds=[background],
                fps=args.fps,
                max_frames=args.frames,
                processor=proc,
            )
        finally:
            proc.close()
    k = args.warmup
    samples = result.timer.samples
    g2g = samples[GLASS_TO_GLASS][k:]
    stages = {s: percentiles(samples[s][k:]) for s in (*STAGES, "total") if samples.get(s)}
    report = {
        "benchmark": "glass_to_glass",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": vb.machine_info(args.threads),
        "config": {
            "input": str(clip),
            "size": f"{w}x{h}",
            "pace_fps": args.fps,
            "frames": args.frames,
            "warmup_excluded": k,
            "sink": args.sink,
            "model": proc.segmenter.card.name,
            "model_card": str(proc.segmenter.card.path),
            "engine": proc.engine_name,
            "threads": args.threads,
            "background": background,
        },
        "glass_to_glass_ms": percentiles(g2g),
        "delivered_fps": delivered_fps(stamps.sent_at[k:]),
        "frames_processed": result.frames,
        "frames_dropped": result.dropped,  # whole run, warm-up included
        "frames_dropped_after_warmup": skipped_frames(stamps.pts[k:], args.fps),
        "drop_rate_after_warmup": skipped_frames(stamps.pts[k:], args.fps)
        / max(1, result.frames - k + skipped_frames(stamps.pts[k:], args.fps)),
        "stopped_by": result.stopped_by,
        "stages_ms": stages,
    }
    tag = args.tag or f"glass_to_glass-{w}x{h}"
    out = Path(args.out)
    vb.write_json(out / f"{tag}.json", report)
    md = markdown(report)
    (out / f"{tag}.md").write_text(md)
    print(md)
    print(f"wrote {out / tag}.json and .md")
    return report


def markdown(r: dict[str, Any]) -> str:
    m, cfg, g = r["machine"], r["config"], r["glass_to_glass_ms"]
    st = r["stages_ms"]
    stage_cells = " | ".join(f"{st[s]['p50']:.2f}/{st[s]['p95']:.2f}" for s in st)
    return "\n".join(
        [
            f"# Glass-to-glass latency, {cfg['size']} at {cfg['pace_fps']:g} FPS",
            "",
            f"Machine: {m['cpu']}, {m['usable_cores']} cores usable, load "
            f"{m.get('load_average_1m')} at start. Model `{cfg['model']}`, engine "
            f"{cfg['engine']}, sink {cfg['sink']}; {cfg['frames']} frames, the first "
            f"{cfg['warmup_excluded']} excluded. Source: {Path(cfg['input']).name} played at "
            "camera rate (newest frame wins).",
            "",
            "| g2g p50 | p95 | p99 | delivered FPS | dropped after warm-up | dropped in all | "
            "processed |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            f"| {g['p50']:.1f} | {g['p95']:.1f} | {g['p99']:.1f} | {r['delivered_fps']:.1f} | "
            f"{r['frames_dropped_after_warmup']} ({100 * r['drop_rate_after_warmup']:.1f}%) | "
            f"{r['frames_dropped']} | {r['frames_processed']} |",
            "",
            "Per stage, ms p50/p95 (capture = how long the frame waited for the loop):",
            "",
            "| " + " | ".join(st) + " |",
            "|" + "|".join(" --- " for _ in st) + "|",
            "| " + stage_cells + " |",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except VbgError as e:
        print(f"glass_to_glass: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
