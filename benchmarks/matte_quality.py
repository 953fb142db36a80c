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
from vbg.segmenter import Stateless
from vbg.temporal import TemporalConfig, TemporalSmoother


class _Recording:
    """A Masker that keeps how much alpha each frame puts on the true background."""

    def __init__(self, proc: FrameProcessor, truths: list[np.ndarray]) -> None:
        self.proc, self.truths, self.leaks = proc, truths, []

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        alpha = self.proc.mask(frame_bgr)
        self.leaks.append(background_leak(alpha, self.truths[len(self.leaks)]))
        return alpha

    def reset(self) -> None:
        self.proc.reset()


def background_leak(alpha: np.ndarray, truth: np.ndarray, margin: int = 3) -> float:
    """Fraction of the true background farther than `margin` px from the person where the
    matte is not 0: what a chroma key (color:) shows as pixels off the key colour."""
    far = cv2.dilate(truth, np.ones((2 * margin + 1,) * 2, np.uint8)) == 0
    n = int(np.count_nonzero(far))
    return 0.0 if n == 0 else int(np.count_nonzero(alpha[far] > 0)) / n


class _CachedSegmenter(Stateless):
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
    ims = [im for seq in sequences(load_person_set(ann)) for im in seq]
    truths = [im.truth() for im in ims]
    for name, make in variants.items():
        smoother, refiner = make()
        seg = _CachedSegmenter(probs, card=None, engine=None)
        proc = FrameProcessor(segmenter=seg, smoother=smoother, refiner=refiner)  # type: ignore[arg-type]
        rec = _Recording(proc, truths)
        rep = evaluate(ann, images, rec)
        rep.pop("per_image")
        rep["background_leak"] = float(np.mean(rec.leaks))
        for src, m in rep.get("per_source", {}).items():
            m["background_leak"] = float(
                np.mean([v for v, im in zip(rec.leaks, ims, strict=True) if im.source == src])
            )
        out[name] = rep
        print(_row(name, rep), flush=True)
    return out


def _row(name: str, r: dict[str, Any]) -> str:
    ps = r.get("per_source", {})
    cells = [f"{r['iou']:.4f}", f"{r['boundary_iou']:.4f}"]
    cells += [
        f"{ps[s]['iou']:.4f}/{ps[s]['boundary_iou']:.4f}/{100 * ps[s]['background_leak']:.1f}%"
        for s in sorted(ps)
    ]
    cells.append(f"{r['dtssd']:.3f}" if "dtssd" in r else "-")
    cells.append(f"{100 * r['background_leak']:.2f} %")
    return f"| {name} | " + " | ".join(cells) + " |"


def default_variants() -> dict[str, Variant]:
    def tc(**kw: Any) -> Variant:
        return lambda: (TemporalSmoother(TemporalConfig(**kw)), Refiner())

    def rf(**kw: Any) -> Variant:
        return lambda: (TemporalSmoother(TemporalConfig()), Refiner(**kw))

    return {
        "before: plain EMA, guided": lambda: (
            TemporalSmoother(TemporalConfig(mode="ema")),
            Refiner(bounds=False, min_area=0, max_hole=0),
        ),
        "adaptive smoothing only": rf(bounds=False, min_area=0, max_hole=0),
        "adaptive + bounds": rf(min_area=0, max_hole=0),
        "after: adaptive + bounds + specks/holes (defaults)": rf(),
        "after, with DenseCRF keyframes every 5": rf(crf_every=5),
        "before, with DenseCRF keyframes every 5": lambda: (
            TemporalSmoother(TemporalConfig(mode="ema")),
            Refiner(bounds=False, min_area=0, max_hole=0, crf_every=5),
        ),
        "after, ema smoothing": lambda: (TemporalSmoother(TemporalConfig(mode="ema")), Refiner()),
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
