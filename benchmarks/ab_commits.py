"""Before/after on a busy machine: `vbg bench` of two commits, alternating, in rounds.

Two versions of vbg cannot share a process, so each round runs `vbg bench` once per
commit in a subprocess (base, head in odd rounds, head, base in even ones), on the same
synthetic frames and engines; load from elsewhere then falls on both alike. Reported per
commit and engine: the median over rounds of each round's p50 (FPS, frame, outside
inference, every stage), and the spread (min-max) of the frame p50.

    python -m benchmarks.ab_commits --base adfd28b --rounds 5 -- \\
        --synthetic 1280x720 --frames 300 --engine onnxruntime openvino

The base commit is exported with `git archive` into a temporary folder (its own assets,
models included); `--head` defaults to the working tree itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vbg import bench as vb

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def export_commit(commit: str, dest: Path) -> Path:
    """The tree of `commit` in dest (git archive | tar x)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "tree.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as t:
        t.extractall(dest, filter="data")
    archive.unlink()
    return dest


def bench_once(tree: Path, bench_args: Sequence[str], out_json: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "vbg", "bench", *bench_args, "--json", str(out_json)]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out_json.read_text())


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{engine: medians over rounds of the per-round p50s} for one commit's runs."""
    by_engine: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for r in run["results"]:
            by_engine.setdefault(r["name"], []).append(r)
    out = {}
    for name, rs in by_engine.items():
        frame = [r["end_to_end_ms"]["p50"] for r in rs]
        row: dict[str, Any] = {
            "rounds": len(rs),
            "fps": statistics.median(r["fps"] for r in rs),
            "frame_p50": statistics.median(frame),
            "frame_p50_spread": [min(frame), max(frame)],
            "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in rs),
        }
        outside = [
            r["outside_inference_ms"]["p50"] if r.get("outside_inference_ms") else None for r in rs
        ]
        if None in outside:  # an old commit's bench: stage p50s without inference, summed
            outside = [
                sum(v["p50"] for k, v in r["stages_ms"].items() if k not in ("inference", "total"))
                for r in rs
            ]
        row["outside_inference_p50"] = statistics.median(outside)
        row["outside_inference_p50_spread"] = [min(outside), max(outside)]
        for stage in vb.STAGES:
            vals = [r["stages_ms"][stage]["p50"] for r in rs if stage in r["stages_ms"]]
            if vals:
                row[f"{stage}_p50"] = statistics.median(vals)
        out[name] = row
    return out


def markdown(report: dict[str, Any]) -> str:
    cfg, m = report["config"], report["machine"]
    lines = [
        f"# Before / after: {cfg['base']} -> {cfg['head']}",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} cores usable, load {m.get('load_average_1m')}"
        f" at start. `vbg bench {' '.join(cfg['bench_args'])}`, {cfg['rounds']} rounds, "
        "commits alternating; medians over rounds of each round's p50 (ms), spread min-max.",
        "",
        "| commit | engine | FPS | frame p50 (spread) | outside inference p50 (spread) | "
        + " | ".join(vb.STAGES)
        + " | CPU ms/frame |",
        "|" + " --- |" * (6 + len(vb.STAGES)),
    ]
    for label in ("base", "head"):
        for name, r in report[label].items():
            fs, os_ = r["frame_p50_spread"], r["outside_inference_p50_spread"]
            stages = " | ".join(
                f"{r[f'{s}_p50']:.2f}" if f"{s}_p50" in r else "-" for s in vb.STAGES
            )
            lines.append(
                f"| {cfg[label]} | {name} | {r['fps']:.1f} | {r['frame_p50']:.2f} "
                f"({fs[0]:.2f}-{fs[1]:.2f}) | {r['outside_inference_p50']:.2f} "
                f"({os_[0]:.2f}-{os_[1]:.2f}) | {stages} | {r['cpu_ms_per_frame']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ab_commits",
        description="vbg bench of two commits, alternating in rounds (arguments after -- "
        "go to vbg bench).",
    )
    p.add_argument("--base", required=True, help="the 'before' commit")
    p.add_argument("--head", default=None, help="the 'after' commit (default: this tree)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--tag", default="ab-commits", help="file name stem")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then vbg bench arguments")
    args = p.parse_args(argv)
    bench_args = [a for a in args.bench_args if a != "--"]
    with tempfile.TemporaryDirectory(prefix="vbg-ab-") as tmp:
        tmp_path = Path(tmp)
        trees = {"base": export_commit(args.base, tmp_path / "base")}
        trees["head"] = export_commit(args.head, tmp_path / "head") if args.head else ROOT
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
        for i in range(args.rounds):
            order = ("base", "head") if i % 2 == 0 else ("head", "base")
            for label in order:
                out_json = tmp_path / f"{label}-{i}.json"
                runs[label].append(bench_once(trees[label], bench_args, out_json))
                print(f"ab: round {i + 1}/{args.rounds} {label} done", file=sys.stderr)
    report = {
        "benchmark": "ab_commits",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": vb.machine_info(),
        "config": {
            "base": args.base,
            "head": args.head or "working tree",
            "rounds": args.rounds,
            "bench_args": bench_args,
        },
        "base": summarize(runs["base"]),
        "head": summarize(runs["head"]),
        "runs": runs,
    }
    vb.write_json(args.out / f"{args.tag}.json", report)
    md = markdown(report)
    (args.out / f"{args.tag}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
