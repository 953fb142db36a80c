"""Throughput and per-stage latency at 640x480, 1280x720 and 1920x1080, engines side by side.

Built on vbg.bench (the code behind `vbg bench`): the real FrameProcessor and virtual-camera
sink (null device), the pipeline's StageTimer, warm-up, and engines interleaved in blocks
whose order rotates each round, so load from elsewhere on the machine hits every engine
alike. Frames are the bundled sample clip resized to each size (decoded before timing), or
synthetic ones.

Writes into --out (default benchmarks/results/): fps_latency.json (everything, with the
machine), fps_latency.md (the table) and fps_latency.png (latency distribution per stage).

    python -m benchmarks.fps_latency --model assets/models/default.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vbg import VbgError
from vbg import bench as vb
from vbg.timing import STAGES

DEFAULT_SIZES = ("640x480", "1280x720", "1920x1080")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fps_latency",
        description="FPS and per-stage latency (p50/p95/p99) per resolution and engine.",
    )
    p.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="WxH")
    p.add_argument(
        "--engine", nargs="+", default=None, help="engines or 'all' (default: available)"
    )
    p.add_argument("--input", default=None, help="video to resize (default: the sample clip)")
    p.add_argument("--synthetic", action="store_true", help="synthetic frames instead of a video")
    p.add_argument("--frames", type=int, default=300, help="timed frames per engine and size")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames first")
    p.add_argument("--block", type=int, default=vb.DEFAULT_BLOCK, help="frames per engine turn")
    p.add_argument("--paced", action="store_true", help="pace at 30 FPS like a camera")
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: its own)")
    p.add_argument("--model", default=None, help="model card (default: the bundled model)")
    p.add_argument("--background", default=None, help="default: the first bundled image")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--tag", default="fps_latency", help="file name stem")
    return p


def frames_for(args: argparse.Namespace, size: tuple[int, int]) -> tuple[list, str]:
    if args.synthetic:
        return vb.synthetic_frames(*size), "synthetic"
    from vbg.assets import sample_clip_path

    path = args.input or sample_clip_path()
    # At most ~2 s of frames: looping them changes nothing in the timings, and 1080p frames
    # are 6 MB each.
    frames, _ = vb.load_frames(path, min(args.frames + args.warmup, 60), size)
    return frames, str(path)


def run_size(
    args: argparse.Namespace, engines: Sequence[str], size: tuple[int, int], background: str
) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[float]]], str]:
    """(results, raw samples per engine for the plot, input description) at one size."""
    w, h = size
    frames, source = frames_for(args, size)
    contenders = []
    try:
        for e in engines:
            contenders.append(
                vb.build_contender(
                    e,
                    e,
                    model=args.model,
                    size=size,
                    background=background,
                    threads=args.threads,
                    fps=vb.SYNTHETIC_FPS,
                )
            )
        vb.measure(
            contenders,
            frames,
            n_frames=args.frames,
            warmup=args.warmup,
            block=args.block,
            pace_fps=vb.SYNTHETIC_FPS if args.paced else None,
        )
        results, samples = [], {}
        for c in contenders:
            mh, mw = c.processor.segmenter.input_size(h, w)
            results.append(
                vb.result_of(
                    c,
                    engine=c.processor.engine_name,
                    **vb.model_info(c),
                    input_size=f"{w}x{h}",
                    model_input=f"{mw}x{mh}",
                )
            )
            samples[c.name] = {k: list(v) for k, v in c.timer.samples.items()}
            samples[c.name]["end_to_end"] = list(c.frame_ms)
    finally:
        for c in contenders:
            vb.close_contender(c)
    return results, samples, source


def plot(samples: dict[str, dict[str, dict[str, list[float]]]], path: Path, title: str) -> None:
    """One panel per size: per stage, a box per engine (whiskers p1-p99, no outliers)."""
    try:
        import matplotlib
    except ImportError as e:
        raise VbgError("the plot needs matplotlib: pip install matplotlib") from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(samples)
    stages = [*STAGES, "total", "end_to_end"]
    fig, axes = plt.subplots(len(sizes), 1, figsize=(12, 3.6 * len(sizes)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, size in zip(axes[:, 0], sizes, strict=True):
        engines = list(samples[size])
        width = 0.8 / max(1, len(engines))
        for j, eng in enumerate(engines):
            data = [samples[size][eng].get(s) or [0.0] for s in stages]
            pos = [i + (j - (len(engines) - 1) / 2) * width for i in range(len(stages))]
            bp = ax.boxplot(
                data,
                positions=pos,
                widths=width * 0.9,
                whis=(1, 99),
                showfliers=False,
                patch_artist=True,
                manage_ticks=False,
            )
            for box in bp["boxes"]:
                box.set_facecolor(colours[j % len(colours)])
                box.set_alpha(0.6)
            ax.plot([], [], color=colours[j % len(colours)], lw=6, alpha=0.6, label=eng)
        ax.set_xticks(range(len(stages)), stages)
        ax.set_ylabel("ms (box p25-p75, whiskers p1-p99)")
        # symlog: sub-millisecond stages and 100 ms stalls on one readable axis.
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_ylim(bottom=0)
        ax.set_title(size)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [vb.parse_size(s) for s in args.sizes]
    engines, skipped = vb.select_engines(args.engine)
    background = args.background or vb.default_background()
    machine = vb.machine_info(args.threads)
    all_results: list[dict[str, Any]] = []
    all_samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    source = ""
    t0 = time.perf_counter()
    for size in sizes:
        print(f"fps_latency: {size[0]}x{size[1]}, engines {', '.join(engines)}", file=sys.stderr)
        results, samples, source = run_size(args, engines, size, background)
        all_results += results
        all_samples[f"{size[0]}x{size[1]}"] = samples
        print(vb.format_table(results), file=sys.stderr)
    report = {
        "benchmark": "fps_latency",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "config": {
            "sizes": args.sizes,
            "engines": engines,
            "input": source,
            "frames": args.frames,
            "warmup": args.warmup,
            "block": args.block,
            "paced": bool(args.paced),
            "threads": args.threads,
            "model": str(args.model) if args.model else "default",
            "background": background,
            "seconds": time.perf_counter() - t0,
        },
        "results": all_results,
        "skipped": skipped,
    }
    out = Path(args.out)
    vb.write_json(out / f"{args.tag}.json", report)
    md = markdown(report)
    (out / f"{args.tag}.md").write_text(md)
    model = all_results[0].get("model", "?") if all_results else "?"
    plot(
        all_samples,
        out / f"{args.tag}.png",
        f"per-stage latency, model {model}, {machine['cpu']} ({machine['usable_cores']} cores)",
    )
    print(md)
    print(f"wrote {out / args.tag}.json, .md and .png")
    return report


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    model = report["results"][0].get("model", "?") if report["results"] else "?"
    lines = [
        "# vbg FPS and latency",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} cores usable ({m['logical_cores']} logical), "
        f"load {m.get('load_average_1m')} at start; engine threads: {m['engine_threads']}.",
        f"Model `{model}`; input {cfg['input']} resized; {cfg['frames']} frames per engine "
        f"and size (+{cfg['warmup']} warm-up), engines interleaved in blocks of "
        f"{cfg['block']}; {'paced at 30 FPS' if cfg['paced'] else 'unpaced'}; background "
        f"{cfg['background']}. Latencies in ms (p50/p95); e2e = whole frame (capture to output).",
        "",
        vb.format_markdown(report["results"]),
    ]
    if report["skipped"]:
        lines += ["", "Not available here: " + ", ".join(report["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except VbgError as e:
        print(f"fps_latency: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
