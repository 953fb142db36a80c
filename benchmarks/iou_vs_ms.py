"""Accuracy against cost on this machine: test-split IoU (live path) against the measured
milliseconds of the network per 1280x720 frame, for vbg's models and the two peers it is
held against, MediaPipe's selfie segmenter and Robust Video Matting, in one run (issue 9:
"pick the default from that plot").

    python -m benchmarks.iou_vs_ms --ann runs/splits/test.json --images PERSONS \
        [--card student=runs/student_v2/int8/student-int8.json] [--engine openvino] \
        [--threads 2] [--rounds 5] [--out benchmarks/results]

Systems: "vbg default" (the bundled model, INT8 on the CPU engines), "vbg --quality high"
(the bundled high-quality model beside it, or the default at two sizes), each --card, all
through vbg's own pipeline; "MediaPipe selfie" (landscape, LiteRT) inside vbg's
post-processing; "RVM" (MobileNetV3, fp32 ONNX on onnxruntime, recurrent state kept
through each video, benchmarks.rvm).
- IoU: vbg.evaluate over --ann (per source, boundary IoU, dtSSD on the video groups),
  without the mirrored pass (the live path).
- ms: what each system spends per frame before its post-processing: the model input and
  the network(s) for vbg and MediaPipe, the whole network (deep guided filter included)
  for RVM, on one textured 1280x720 frame, the systems interleaved in blocks and rotated;
  the median of the rounds' medians and their spread.
Writes iou_vs_ms.json, .md and .png into --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
FRAME_HW = (720, 1280)


@dataclass
class System:
    name: str
    segment: Callable[[np.ndarray], Any]  # one frame in, timed
    masker: Any  # vbg.evaluate's Masker
    close: Callable[[], None] = lambda: None
    report: dict[str, Any] = field(default_factory=dict)


def vbg_system(name: str, card: str | None, engine: str, threads: int, quality: str) -> System:
    from vbg.pipeline import build_processor

    proc = build_processor(card, engine=engine, threads=threads, background=None, quality=quality)
    return System(name, proc.probability, proc, proc.close)


def mediapipe_system(threads: int) -> System:
    from benchmarks.peers import (
        DEFAULT_CACHE,
        MediaPipeSegmenter,
        ensure_peer_model,
        peer_processor,
    )

    seg = MediaPipeSegmenter(ensure_peer_model(DEFAULT_CACHE), threads)
    proc = peer_processor(seg, "blur", FRAME_HW)  # scored through mask(): no compositing
    return System("MediaPipe selfie (LiteRT)", seg, proc, seg.engine.close)


def rvm_system(threads: int) -> System:
    from benchmarks.peers import DEFAULT_CACHE, ensure_peer_model
    from benchmarks.rvm import RVM, RVMMatter

    matter = RVMMatter(ensure_peer_model(DEFAULT_CACHE, peer=RVM), threads)
    return System("RVM mobilenetv3 (onnxruntime)", matter.alpha, matter)


def time_systems(systems: list[System], rounds: int, block: int) -> dict[str, dict[str, float]]:
    """ms per frame of each system's segment(), interleaved blocks, order rotated per round."""
    frame = np.random.default_rng(0).integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)
    frame = np.ascontiguousarray(
        np.clip(
            frame.astype(np.int16) // 3 + np.linspace(0, 170, FRAME_HW[1])[None, :, None], 0, 255
        )
    ).astype(np.uint8)  # texture plus a gradient: not one flat colour
    for s in systems:  # warm-up: compilation, allocation, recurrent state shapes
        for _ in range(5):
            s.segment(frame)
    per_round: dict[str, list[float]] = {s.name: [] for s in systems}
    for r in range(rounds):
        order = systems[r % len(systems) :] + systems[: r % len(systems)]
        for s in order:
            ts = []
            for _ in range(block):
                t0 = time.perf_counter()
                s.segment(frame)
                ts.append(time.perf_counter() - t0)
            per_round[s.name].append(statistics.median(ts) * 1e3)
    return {
        n: {"ms": statistics.median(v), "min": min(v), "max": max(v)} for n, v in per_round.items()
    }


def score(system: System, ann: Path, images: Path) -> dict[str, Any]:
    from vbg.evaluate import evaluate

    rep = evaluate(ann, images, system.masker, progress=False)
    out = {k: rep[k] for k in ("images", "iou", "dice", "boundary_iou") if k in rep}
    out["per_source_iou"] = {s: m["iou"] for s, m in rep.get("per_source", {}).items()}
    if "dtssd" in rep:
        out["dtssd"] = rep["dtssd"]
    return out


def markdown(report: dict[str, Any]) -> str:
    rows = report["systems"]
    sources = sorted({s for r in rows for s in r["quality"].get("per_source_iou", {})})
    head = ["system", "ms per 720p frame (spread)", "IoU", *sources, "boundary IoU", "dtSSD"]
    lines = [
        f"# IoU against ms ({report['machine'].get('cpu')}, {report['threads']} threads, {report['set']})",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    for r in rows:
        q, t = r["quality"], r["speed"]
        cells = [
            r["name"],
            f"{t['ms']:.2f} ({t['min']:.2f}-{t['max']:.2f})",
            f"{q['iou']:.4f}",
            *(f"{q['per_source_iou'].get(s, float('nan')):.4f}" for s in sources),
            f"{q.get('boundary_iou', float('nan')):.3f}",
            f"{q['dtssd']:.2f}" if "dtssd" in q else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("all test images", None), ("video frames", "davis"), ("portraits", "portrait")]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.8))
    for ax, (title, source) in zip(axes, panels, strict=True):
        for r in report["systems"]:
            q = r["quality"]
            y = q["iou"] if source is None else q["per_source_iou"].get(source)
            if y is None:
                continue
            x = r["speed"]["ms"]
            ax.scatter([x], [y], s=40)
            ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        xs = [r["speed"]["ms"] for r in report["systems"]]
        ax.set_xlim(min(xs) / 1.5, max(xs) * 6)  # room for the labels of the slowest
        ax.set_xlabel("ms per 1280x720 frame (network + its input), log scale")
        ax.set_ylabel("IoU, live path")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"IoU against cost, {report['machine'].get('cpu')}, {report['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.iou_vs_ms", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--ann", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--card", action="append", default=[], metavar="NAME=CARD.json")
    p.add_argument("--engine", default="openvino")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=20)
    p.add_argument("--no-peers", action="store_true", help="vbg's models only")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    from vbg.bench import machine_info

    cards = []
    for item in args.card:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--card takes NAME=CARD.json, not {item!r}")
        cards.append((name, path))
    systems: list[System] = []
    try:
        t = args.threads
        systems.append(vbg_system("vbg default", None, args.engine, t, "standard"))
        systems.append(vbg_system("vbg --quality high", None, args.engine, t, "high"))
        systems += [vbg_system(f"vbg {n}", c, args.engine, t, "standard") for n, c in cards]
        if not args.no_peers:
            systems += [mediapipe_system(t), rvm_system(t)]
        speed = time_systems(systems, args.rounds, args.block)
        for s in systems:
            print(f"{s.name}: {speed[s.name]['ms']:.2f} ms; scoring ...", file=sys.stderr)
            s.report = {
                "name": s.name,
                "speed": speed[s.name],
                "quality": score(s, args.ann, args.images),
            }
    except VbgError as e:
        print(f"iou_vs_ms: {e}", file=sys.stderr)
        return 1
    finally:
        for s in systems:
            s.close()
    report = {
        "machine": machine_info(args.threads),
        "threads": args.threads,
        "engine": args.engine,
        "set": str(args.ann),
        "systems": [s.report for s in systems],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "iou_vs_ms.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    (args.out / "iou_vs_ms.md").write_text(md)
    plot(report, args.out / "iou_vs_ms.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
