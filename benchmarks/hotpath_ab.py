"""Before/after of everything outside the network, in one process, frame by frame.

The base commit's `vbg/` is exported (`git archive`) into a temporary folder as package
`vbg_base` (its imports rewritten), so the old and the new code run side by side on the
same frames and the same model output: per frame, the engine runs once (on the new
preprocessing; not timed), then old and new preprocessing + smoothing + refinement +
compositing are timed alternately (the order flips every frame), as wall and CPU time.
A burst of load from elsewhere hits both alike, which `vbg bench` on two commits cannot
promise. The sink is left out (unchanged code). Also reported, from the same frames and
the same probability: how far the new composite and matte are from the old ones.

    python -m benchmarks.hotpath_ab --base adfd28b --frames 300 --engine openvino

Decoding is excluded; frames are synthetic (a moving figure on a textured room) or
--input. --decontaminate adds the offline edge-colour step to both.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vbg import bench as vb

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
ALIAS = "vbg_base"


def export_base(commit: str, dest: Path) -> Path:
    """`vbg/` of `commit` as the package `vbg_base` in dest (on sys.path after this)."""
    archive = dest / "base.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), commit, "vbg"], check=True
    )
    with tarfile.open(archive) as t:
        t.extractall(dest, filter="data")
    (dest / "vbg").rename(dest / ALIAS)
    pattern = re.compile(r"\b(from|import) vbg\b")
    for py in (dest / ALIAS).rglob("*.py"):
        py.write_text(pattern.sub(rf"\1 {ALIAS}", py.read_text()))
    sys.path.insert(0, str(dest))
    return dest / ALIAS


class Path_:
    """One version's stages outside the network, built from that version's modules."""

    def __init__(self, pkg: str, card: Any, background: str, size_hw, decontaminate: bool):
        from vbg.backgrounds import parse_background

        seg = importlib.import_module(f"{pkg}.segmenter")
        tmp = importlib.import_module(f"{pkg}.temporal")
        ref = importlib.import_module(f"{pkg}.refine")
        comp = importlib.import_module(f"{pkg}.compose")
        edges = importlib.import_module(f"{pkg}.edges")
        self.segmenter = seg.Segmenter(card, engine=None)
        self.smoother = tmp.TemporalSmoother()
        self.refiner = ref.Refiner()
        # The spec is parsed by this tree (the exported base has no assets folder); both
        # compositors read only its fields.
        self.compositor = comp.Compositor(parse_background(background), size_hw)
        self.edges = edges.EdgeColors() if decontaminate else None
        self.small_guide = "small_bgr" in ref.Refiner.__call__.__code__.co_varnames

    def frame(self, frame_bgr: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.segmenter.prepare(frame_bgr)
        p = self.smoother(prob)
        if self.small_guide:
            alpha = self.refiner(p, frame_bgr, self.segmenter.small)
        else:
            alpha = self.refiner(p, frame_bgr)
        f = self.edges(frame_bgr, alpha) if self.edges is not None else frame_bgr
        return self.compositor(f, alpha), alpha


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from vbg.card import load_card
    from vbg.engines import create_engine
    from vbg.pipeline import _card_path
    from vbg.segmenter import Segmenter

    w, h = vb.parse_size(args.size)
    if args.input:
        frames, _ = vb.load_frames(args.input, 120, (w, h))
    else:
        frames = vb.synthetic_frames(w, h)
    background = args.background or vb.default_background()
    card = load_card(_card_path(args.model))
    engine = create_engine(args.engine, card, threads=args.threads)
    infer = Segmenter(card, engine)
    base_card = importlib.import_module(f"{ALIAS}.card").load_card(_card_path(args.model))
    paths = {
        "base": Path_(ALIAS, base_card, background, (h, w), args.decontaminate),
        "head": Path_("vbg", card, background, (h, w), args.decontaminate),
    }
    wall: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    diff_out, diff_alpha, flips = [], [], []
    try:
        for i in range(args.warmup + args.frames):
            f = frames[i % len(frames)]
            prob = infer(f)
            outs = {}
            for name in ("base", "head") if i % 2 == 0 else ("head", "base"):
                w0, c0 = time.perf_counter(), time.process_time()
                out, alpha = paths[name].frame(f, prob)
                if i >= args.warmup:
                    wall[name].append((time.perf_counter() - w0) * 1000.0)
                    cpu[name].append((time.process_time() - c0) * 1000.0)
                outs[name] = (out.copy(), alpha.copy())
            if i >= args.warmup:
                d = np.abs(outs["head"][0].astype(np.int16) - outs["base"][0])
                a = np.abs(outs["head"][1].astype(np.int16) - outs["base"][1])
                diff_out.append((float(d.mean()), int(d.max()), float((d > 1).mean())))
                diff_alpha.append((float(a.mean()), int(a.max())))
                flips.append(float(((outs["head"][1] >= 128) != (outs["base"][1] >= 128)).mean()))
    finally:
        engine.close()
    return {
        "benchmark": "hotpath_ab",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": vb.machine_info(args.threads),
        "config": {
            "base": args.base,
            "size": f"{w}x{h}",
            "input": args.input or f"synthetic {w}x{h}",
            "frames": args.frames,
            "warmup": args.warmup,
            "engine": engine.name,
            "background": background,
            "decontaminate": args.decontaminate,
        },
        "outside_inference_ms": {
            k: {"wall": vb.percentiles(wall[k]), "cpu": vb.percentiles(cpu[k])} for k in paths
        },
        "difference": {
            "composite_mean": float(np.mean([d[0] for d in diff_out])),
            "composite_max": max(d[1] for d in diff_out),
            "composite_fraction_over_1": float(np.mean([d[2] for d in diff_out])),
            "alpha_mean": float(np.mean([d[0] for d in diff_alpha])),
            "alpha_max": max(d[1] for d in diff_alpha),
            "mask_pixels_flipped": float(np.mean(flips)),
        },
    }


def markdown(r: dict[str, Any]) -> str:
    cfg, m, t, d = r["config"], r["machine"], r["outside_inference_ms"], r["difference"]
    lines = [
        f"# Outside the network, {cfg['base']} vs this tree, {cfg['size']}",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} cores usable, load {m.get('load_average_1m')}"
        f" at start, OpenCV threads {m['opencv_threads']}. {cfg['input']}, {cfg['frames']} "
        f"frames (+{cfg['warmup']} warm-up), old and new alternating per frame on the same "
        f"model output ({cfg['engine']}); background {cfg['background']}"
        + (", with edge decontamination" if cfg["decontaminate"] else "")
        + ". Preprocessing, smoothing, refinement, compositing; ms per frame.",
        "",
        "| path | wall p50 | wall p95 | CPU p50 | CPU p95 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in ("base", "head"):
        lines.append(
            f"| {k} | {t[k]['wall']['p50']:.2f} | {t[k]['wall']['p95']:.2f} | "
            f"{t[k]['cpu']['p50']:.2f} | {t[k]['cpu']['p95']:.2f} |"
        )
    lines += [
        "",
        f"New vs old on the same frames and model output: composite mean |diff| "
        f"{d['composite_mean']:.3f} grey levels (max {d['composite_max']}, "
        f"{100 * d['composite_fraction_over_1']:.3f} % of values differ by more than 1); "
        f"matte mean |diff| {d['alpha_mean']:.3f} (max {d['alpha_max']}); pixels on the other "
        f"side of 0.5: {100 * d['mask_pixels_flipped']:.4f} %.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hotpath_ab", description=__doc__)
    p.add_argument("--base", required=True, help="the 'before' commit")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--input", default=None, help="video/image instead of synthetic frames")
    p.add_argument("--frames", type=int, default=300, help="timed frames (default 300)")
    p.add_argument("--warmup", type=int, default=20, help="untimed frames first (20)")
    p.add_argument("--engine", default="auto", help="engine for the model output (auto)")
    p.add_argument("--threads", type=int, default=None, help="engine threads")
    p.add_argument("--model", default=None, help="model card (default: the bundled model)")
    p.add_argument("--background", default=None, help="background (default: first bundled)")
    p.add_argument("--decontaminate", action="store_true", help="add edge decontamination")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--tag", default=None, help="file name stem")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vbg-hotpath-") as tmp:
        export_base(args.base, Path(tmp))
        report = measure(args)
    tag = args.tag or f"hotpath-ab-{args.size}" + ("-decontaminate" if args.decontaminate else "")
    vb.write_json(args.out / f"{tag}.json", report)
    md = markdown(report)
    (args.out / f"{tag}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
