"""What `vbg process`'s offline extras cost: the mirrored pass (--tta) and the edge
decontamination, each on and off, on the same file, alternating in rounds.

Each configuration is a real `vbg process` run (decode, model, compositing, H.264 encode)
in a subprocess; reported per configuration: the median over rounds of wall seconds and of
CPU seconds (user + system, all threads), per frame, and the speed-up over the default.

    python -m benchmarks.offline_cost --rounds 3 --engine onnxruntime
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vbg import bench as vb

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
CONFIGS = {
    "default (tta + decontaminate)": [],
    "--no-decontaminate": ["--no-decontaminate"],
    "--no-tta": ["--no-tta"],
    "--no-tta --no-decontaminate": ["--no-tta", "--no-decontaminate"],
}


def run_once(src: str, flags: list[str], extra: list[str], out: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one `vbg process` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vbg", "process", src, "-o", str(out), *flags, *extra],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> int:
    from vbg.assets import sample_clip_path
    from vbg.sources import open_input

    p = argparse.ArgumentParser(prog="python -m benchmarks.offline_cost", description=__doc__)
    p.add_argument("--input", default=None, help="video (default: the bundled sample clip)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--engine", default="onnxruntime", help="engine (default onnxruntime)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = p.parse_args(argv)
    src = str(args.input or sample_clip_path())
    video = open_input(src)
    frames = sum(1 for _ in video)
    w, h = video.width, video.height
    video.close()
    extra = ["--engine", args.engine]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in CONFIGS}
    names = list(CONFIGS)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]  # rotate
            for name in order:
                times[name].append(run_once(src, CONFIGS[name], extra, Path(tmp) / "o.mp4"))
                print(f"offline_cost: round {r + 1} {name} done", file=sys.stderr)
    rows: dict[str, Any] = {}
    for name, ts in times.items():
        rows[name] = {
            "wall_ms_per_frame": 1000 * statistics.median(t[0] for t in ts) / frames,
            "cpu_ms_per_frame": 1000 * statistics.median(t[1] for t in ts) / frames,
            "wall_spread_ms": [
                1000 * min(t[0] for t in ts) / frames,
                1000 * max(t[0] for t in ts) / frames,
            ],
        }
    base = rows[names[0]]
    lines = [
        f"# What vbg process's offline extras cost, {w}x{h}",
        "",
        f"Machine: {vb.machine_info()['cpu']}, load {vb.machine_info().get('load_average_1m')}"
        f". `{src}` ({frames} frames), engine {args.engine}, {args.rounds} rounds, "
        "configurations rotating; medians per frame (whole run: decode, model, compositing, "
        "encode).",
        "",
        "| flags | wall ms/frame (spread) | CPU ms/frame | speed-up (wall) | speed-up (CPU) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        s = r["wall_spread_ms"]
        lines.append(
            f"| {name} | {r['wall_ms_per_frame']:.1f} ({s[0]:.1f}-{s[1]:.1f}) | "
            f"{r['cpu_ms_per_frame']:.1f} | "
            f"{base['wall_ms_per_frame'] / r['wall_ms_per_frame']:.2f}x | "
            f"{base['cpu_ms_per_frame'] / r['cpu_ms_per_frame']:.2f}x |"
        )
    md = "\n".join(lines) + "\n"
    report = {
        "benchmark": "offline_cost",
        "input": src,
        "frames": frames,
        "size": f"{w}x{h}",
        "engine": args.engine,
        "rounds": args.rounds,
        "machine": vb.machine_info(),
        "results": rows,
        "runs": times,
    }
    vb.write_json(args.out / "offline-cost.json", report)
    (args.out / "offline-cost.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
