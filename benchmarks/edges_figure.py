"""docs/edges-before-after.jpg: the bundled sample clip before and after issue 11's matte
and compositing changes, the same frame, with zooms on hair, cheek and the bottom-right
corner, over a chroma key (color:#00b140) and with blur.

"Before" is the previous runtime: plain EMA, the guided matte as it came out, and a blur
of the whole frame under the person; "after" is today's defaults. Both get the same model
probabilities (live path, no mirrored pass), so they differ only in the stages changed.

    python -m benchmarks.edges_figure --out docs/edges-before-after.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from vbg.backgrounds import parse_background
from vbg.compose import Compositor
from vbg.pipeline import build_processor
from vbg.refine import Refiner
from vbg.temporal import TemporalConfig, TemporalSmoother

CLIP = Path(__file__).resolve().parent.parent / "assets" / "samples" / "talking-head.mp4"
# (x, y, w, h) in the clip's 960x540 frame.
CROPS = {
    "hair": (380, 0, 220, 160),
    "cheek": (500, 200, 150, 190),
    "bottom right": (800, 400, 160, 140),
}
ROW_H = 200


def _chains() -> dict[str, tuple[TemporalSmoother, Refiner]]:
    before = (
        TemporalSmoother(TemporalConfig(mode="ema")),
        Refiner(bounds=False, min_area=0, max_hole=0),
    )
    after = (TemporalSmoother(TemporalConfig()), Refiner())
    return {"before": before, "after": after}


def _plain_blur(frame: np.ndarray, alpha: np.ndarray, k: int) -> np.ndarray:
    # The previous blur: the whole frame, person included, blurred under the person.
    bg = cv2.GaussianBlur(frame, (k | 1, k | 1), 0)
    a = alpha[..., None].astype(np.float32) / 255.0
    return np.clip(frame * a + bg * (1 - a) + 0.5, 0, 255).astype(np.uint8)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.rectangle(img, (0, 0), (12 + 10 * len(text), 28), (0, 0, 0), -1)
    cv2.putText(img, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _row(img: np.ndarray, name: str) -> np.ndarray:
    h, w = img.shape[:2]
    tiles = [
        _label(cv2.resize(img, (round(w * ROW_H / h), ROW_H), interpolation=cv2.INTER_AREA), name)
    ]
    for cname, (x, y, cw, ch) in CROPS.items():
        crop = img[y : y + ch, x : x + cw]
        tiles.append(
            _label(
                cv2.resize(crop, (round(cw * ROW_H / ch), ROW_H), interpolation=cv2.INTER_NEAREST),
                cname,
            )
        )
    sep = np.full((ROW_H, 4, 3), 255, np.uint8)
    out = [tiles[0]]
    for t in tiles[1:]:
        out += [sep, t]
    return np.hstack(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/edges-before-after.jpg"))
    ap.add_argument("--frame", type=int, default=66, help="which frame of the clip (0-based)")
    a = ap.parse_args(argv)
    proc = build_processor(None, background=None, tta=False)
    chains = _chains()
    cap = cv2.VideoCapture(str(CLIP))
    alphas: dict[str, np.ndarray] = {}
    frame = None
    for _ in range(a.frame + 1):
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"the clip has fewer than {a.frame + 1} frames")
        prob = proc.probability(frame)
        for name, (sm, ref) in chains.items():
            alphas[name] = ref(sm(prob.copy(), frame), frame).copy()
    proc.close()
    h, w = frame.shape[:2]
    key = Compositor(parse_background("color:#00b140"), (h, w))
    blur = Compositor(parse_background("blur"), (h, w))
    k = parse_background("blur").blur_ksize
    rows = [
        _row(key(frame, alphas["before"]).copy(), "before, color:#00b140"),
        _row(key(frame, alphas["after"]).copy(), "after, color:#00b140"),
        _row(_plain_blur(frame, alphas["before"], k), "before, blur"),
        _row(blur(frame, alphas["after"]).copy(), "after, blur"),
    ]
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    img = rows[0]
    for r in rows[1:]:
        img = np.vstack([img, sep, r])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    # Pixels off the key colour 10+ px away from the person (alpha >= 128): leaks, blobs.
    ring = np.ones((21, 21), np.uint8)
    off = {}
    for n, al in alphas.items():
        far = cv2.dilate((al >= 128).astype(np.uint8), ring) == 0
        off[n] = float(np.mean(np.any(key(frame, al) != (64, 177, 0), axis=2)[far]))
    print(
        f"wrote {a.out}; pixels off the key colour: "
        + ", ".join(f"{n} {100 * v:.1f} %" for n, v in off.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
