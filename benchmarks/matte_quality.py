"""Matte quality of post-processing variants, side by side, on the same model outputs.

The model's probability for every frame of a COCO set is computed once (live path: no
mirrored pass, unless --tta) and cached; each variant then runs only the runtime's stages
after the model (temporal smoothing, upsampling, clean-up) through `FrameProcessor.mask`,
scored by `vbg.evaluate.evaluate`: exactly what `vbg eval` measures, minus the repeated
inference. So "plain EMA" against "adaptive" differs in nothing but the smoother.

    python -m benchmarks.matte_quality --ann runs/edges/test.json \
        --images /work/shared/data/persons/images --json benchmarks/results/matte_quality.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vbg.evaluate import evaluate, load_person_set, sequences
from vbg.pipeline import FrameProcessor, build_processor
from vbg.refine import Refiner
from vbg.temporal import TemporalConfig, TemporalSmoother


class _CachedSegmenter:
    """Stands in for the Segmenter: hands out the cached probabilities in evaluation order."""

    def __init__(self, probs: list[np.ndarray], card: Any, engine: Any) -> None:
        self.probs, self.card, self.engine = probs, card, engine
        self.i = 0

    def __call__(self, frame_bgr: np.ndarray, timer: Any = None) -> np.ndarray:
        p = self.probs[self.i]
        self.i += 1
        return p.copy()


def cache_probabilities(ann: Path, images: Path, cache: Path, tta: bool) -> list[np.ndarray]:
    """The model's probability for every image, in the order `evaluate` visits them."""
    if cache.is_file():
        with np.load(cache) as z:
            return [z[f"p{i}"] for i in range(len(z.files))]
    proc = build_processor(None, engine="onnxruntime", background=None, tta=tta)
    probs = []
    for seq in sequences(load_person_set(ann)):
        for im in seq:
            frame = cv2.imread(str(images / im.file_name), cv2.IMREAD_COLOR)
            probs.append(proc.probability(frame).astype(np.float32))
    proc.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **{f"p{i}": p for i, p in enumerate(probs)})
    return probs


Variant = Callable[[], tuple[TemporalSmoother | None, Refiner]]


def run_variants(
    ann: Path, images: Path, probs: list[np.ndarray], variants: dict[str, Variant]
) -> dict[str, dict[str, Any]]:
    out = {}
    for name, make in variants.items():
        smoother, refiner = make()
        seg = _CachedSegmenter(probs, card=None, engine=None)
        proc = FrameProcessor(segmenter=seg, smoother=smoother, refiner=refiner)  # type: ignore[arg-type]
        rep = evaluate(ann, images, proc)
        rep.pop("per_image")
        out[name] = rep
        print(_row(name, rep), flush=True)
    return out


def _row(name: str, r: dict[str, Any]) -> str:
    ps = r.get("per_source", {})
    cells = [f"{r['iou']:.4f}", f"{r['boundary_iou']:.4f}"]
    cells += [f"{ps[s]['iou']:.4f}/{ps[s]['boundary_iou']:.4f}" for s in sorted(ps)]
    cells.append(f"{r['dtssd']:.3f}" if "dtssd" in r else "-")
    return f"| {name} | " + " | ".join(cells) + " |"


def default_variants() -> dict[str, Variant]:
    def tc(**kw: Any) -> Variant:
        return lambda: (TemporalSmoother(TemporalConfig(**kw)), Refiner())

    return {
        "plain EMA 0.5 (before)": tc(mode="ema"),
        "adaptive 0.25/0.5 h0.1": tc(),
        "adaptive 0.25/0.5 h0": tc(hysteresis=0.0),
        "adaptive 0.15/0.5 h0.1": tc(still_weight=0.15),
        "adaptive 0.25/0.3 h0.1": tc(move_diff=0.3),
        "adaptive 0.1/0.7 h0.1": tc(still_weight=0.1, move_diff=0.7),
        "EMA 0.25": tc(mode="ema", ema=0.25),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ann", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--tta", action="store_true", help="the offline path's mirrored pass")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    cache = a.cache or Path("runs/matte_quality") / f"{a.ann.stem}{'_tta' if a.tta else ''}.npz"
    probs = cache_probabilities(a.ann, a.images, cache, a.tta)
    res = run_variants(a.ann, a.images, probs, default_variants())
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
