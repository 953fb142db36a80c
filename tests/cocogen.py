"""A tiny COCO-format person dataset, generated with its ground truth known exactly.

The generator rasterises each drawn shape itself (pixel (r, c) covers [c, c+1) x [r, r+1);
a pixel belongs to a shape when its centre lies inside) and stores the resulting masks in a
sidecar `truth/<image_id>.npz`. The annotations it writes are exact encodings of those
masks: a polygon annotation is the pixel-boundary outline of each drawn piece (head disc,
torso, legs), which pycocotools rasterises back to exactly the same pixels; an RLE
annotation is `pycocotools.mask.encode` of the person's mask; the crowd region is an
uncompressed RLE (as COCO stores crowds). Tests compare what the code under test decodes
with the sidecar, so they never rely on that code to compute their expectations.

What the set contains (defaults): still images (JPEG and PNG, landscape and portrait), video
frames that share a `group` and whose file names sort in frame order, one crowd region,
images without people (one of them with only a non-person "dog" annotation, which must be
ignored), and people drawn over each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

PERSON = 1
DOG = 18  # a non-person category (COCO's id for dog); its annotations must be ignored


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (((yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2) <= r * r).astype(np.uint8)


def _convex(h: int, w: int, pts: list[tuple[float, float]]) -> np.ndarray:
    """Pixels whose centre lies inside the convex polygon `pts` ((x, y), counter-clockwise
    or clockwise): all half-plane tests agree in sign."""
    yy, xx = np.mgrid[0:h, 0:w]
    px, py = xx + 0.5, yy + 0.5
    pos = np.ones((h, w), bool)
    neg = np.ones((h, w), bool)
    n = len(pts)
    for i in range(n):
        x0, y0 = pts[i]
        x1, y1 = pts[(i + 1) % n]
        cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        pos &= cross >= 0
        neg &= cross <= 0
    return (pos | neg).astype(np.uint8)


def _outline(piece: np.ndarray) -> list[float]:
    """Pixel-boundary polygon of a row-convex piece (each row one run, rows contiguous),
    flattened as COCO wants: [x0, y0, x1, y1, ...]. Down the right edges, up the left."""
    rows = [r for r in range(piece.shape[0]) if piece[r].any()]
    right: list[tuple[int, int]] = []
    left: list[tuple[int, int]] = []
    for r in rows:
        cols = np.flatnonzero(piece[r])
        assert cols[-1] - cols[0] + 1 == len(cols), "piece must be row-convex"
        right += [(int(cols[-1]) + 1, r), (int(cols[-1]) + 1, r + 1)]
        left += [(int(cols[0]), r), (int(cols[0]), r + 1)]
    pts = right + left[::-1]
    return [float(v) for p in pts for v in p]


def _person_pieces(h: int, w: int, cx: float, top: float, height: float) -> list[np.ndarray]:
    """Head disc, torso trapezoid and two legs of a standing person, each a mask."""
    head_r = height * 0.11
    cy = top + head_r
    torso_top = cy + head_r * 0.8
    torso_bot = top + height * 0.62
    sh = height * 0.17  # half shoulder width
    hip = height * 0.12
    foot = top + height
    leg = height * 0.045
    pieces = [
        _disc(h, w, cy, cx, head_r),
        _convex(
            h,
            w,
            [
                (cx - sh, torso_top),
                (cx + sh, torso_top),
                (cx + hip, torso_bot),
                (cx - hip, torso_bot),
            ],
        ),
        _convex(
            h,
            w,
            [
                (cx - hip, torso_bot - 1),
                (cx - hip + 2 * leg, torso_bot - 1),
                (cx - hip * 0.6 + 2 * leg, foot),
                (cx - hip * 0.6, foot),
            ],
        ),
        _convex(
            h,
            w,
            [
                (cx + hip - 2 * leg, torso_bot - 1),
                (cx + hip, torso_bot - 1),
                (cx + hip * 0.6, foot),
                (cx + hip * 0.6 - 2 * leg, foot),
            ],
        ),
    ]
    return [p for p in pieces if p.any()]


def _bbox(m: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def _uncompressed_rle(m: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major (Fortran) flattening,
    starting with a run of zeros."""
    flat = m.flatten(order="F").astype(np.uint8)
    counts: list[int] = []
    cur, run = 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = int(v), 1
    counts.append(run)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts}


def _compressed_rle(m: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def make_coco(
    root: Path,
    n_images: int = 12,
    size: tuple[int, int] = (96, 128),
    n_groups: int = 2,
    frames_per_group: int = 3,
    with_crowd: bool = True,
    with_empty: bool = True,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a COCO person set under `root`; returns (annotation json, images root).

    `n_images` counts every image (stills + video frames + empty ones). Layout:
    root/annotations/instances.json, root/images/{still,video}/..., root/truth/<id>.npz.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    img_root = root / "images"
    truth = root / "truth"
    for d in (img_root / "still", img_root / "video", truth, root / "annotations"):
        d.mkdir(parents=True, exist_ok=True)
    H, W = size
    n_video = n_groups * frames_per_group
    n_empty = 2 if with_empty else 0
    n_still = n_images - n_video - n_empty
    if n_still < (2 if with_crowd else 1):
        raise ValueError("n_images too small for the requested groups/empty images")

    # (kind, group index, frame index); ids are deliberately not 0..n-1 nor in file order.
    plan: list[tuple[str, int, int]] = [("still", -1, i) for i in range(n_still)]
    plan += [("video", g, f) for g in range(n_groups) for f in range(frames_per_group)]
    plan += [("empty", -1, i) for i in range(n_empty)]
    ids = [int(v) for v in 1000 + 7 * rng.permutation(len(plan))]

    images: list[dict] = []
    anns: list[dict] = []
    next_ann = [500]

    def add_ann(img_id: int, cat: int, seg, m: np.ndarray, crowd: int = 0) -> None:
        anns.append(
            {
                "id": next_ann[0],
                "image_id": img_id,
                "category_id": cat,
                "segmentation": seg,
                "area": float(m.sum()),
                "bbox": _bbox(m),
                "iscrowd": crowd,
            }
        )
        next_ann[0] += 3

    crowd_done = not with_crowd
    for (kind, g, f), img_id in zip(plan, ids, strict=True):
        # Every third still is a portrait: the EDA's size scatter then has two clusters.
        h, w = (W, H) if kind == "still" and f % 3 == 2 else (H, W)
        yy, xx = np.mgrid[0:h, 0:w]
        bg = np.stack(
            [40 + 60 * xx / w, 90 + 50 * yy / h, 160 - 40 * xx / w + rng.uniform(-8, 8, (h, w))],
            axis=-1,
        )
        img = np.clip(bg, 0, 255).astype(np.uint8)
        person = np.zeros((h, w), np.uint8)
        crowd = np.zeros((h, w), np.uint8)

        if kind == "video":
            name = f"video/clip{g}_{f:05d}.jpg"
            # The same person walking right a few pixels per frame.
            specs = [(w * 0.3 + 4 * f + 10 * g, h * 0.15, h * 0.8)]
        elif kind == "still":
            name = f"still/{f:04d}." + ("png" if f % 4 == 1 else "jpg")
            n_people = 1 + f % 3
            specs = [
                (
                    rng.uniform(0.15, 0.85) * w,
                    rng.uniform(0.05, 0.3) * h,
                    rng.uniform(0.5, 0.75) * h,
                )
                for _ in range(n_people)
            ]
        else:
            name = f"still/empty{f}.jpg"
            specs = []

        if kind == "empty" and f == 0:
            # A dog (non-person category): drawn, annotated, and not part of the target.
            dog = _convex(
                h,
                w,
                [(w * 0.2, h * 0.6), (w * 0.6, h * 0.6), (w * 0.6, h * 0.8), (w * 0.2, h * 0.8)],
            )
            img[dog > 0] = (30, 60, 120)
            add_ann(img_id, DOG, [_outline(dog)], dog)

        for cx, top, ph in specs:
            pieces = _person_pieces(h, w, cx, top, ph)
            m = np.zeros((h, w), np.uint8)
            for p in pieces:
                m |= p
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            img[m > 0] = colour
            person |= m
            # Alternate encodings: polygons for some people, compressed RLE for others.
            if (len(anns) + f) % 2 == 0:
                add_ann(img_id, PERSON, [_outline(p) for p in pieces], m)
            else:
                add_ann(img_id, PERSON, _compressed_rle(m), m)

        if not crowd_done and kind == "still" and specs:
            # A crowd region in the lower-left corner, COCO style (uncompressed RLE).
            c = _convex(h, w, [(0, h * 0.7), (w * 0.3, h * 0.7), (w * 0.3, h), (0, h)])
            c &= 1 - person
            img[c > 0] = (200, 180, 170)
            crowd |= c
            add_ann(img_id, PERSON, _uncompressed_rle(c), c, crowd=1)
            crowd_done = True

        path = img_root / name
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if name.endswith(".jpg") else []
        ok = cv2.imwrite(str(path), img, params)
        assert ok, path
        np.savez_compressed(truth / f"{img_id}.npz", person=person, crowd=crowd)
        entry = {"id": img_id, "file_name": name, "width": w, "height": h}
        entry["source"] = "video" if kind == "video" else "still"
        if kind == "video":
            entry["group"] = f"clip{g}"
        images.append(entry)

    # JSON order is neither id order nor file order: consumers must not depend on it.
    order = rng.permutation(len(images))
    data = {
        "info": {"description": "vbg synthetic test set"},
        "images": [images[i] for i in order],
        "annotations": anns,
        "categories": [
            {"id": PERSON, "name": "person", "supercategory": "person"},
            {"id": DOG, "name": "dog", "supercategory": "animal"},
        ],
    }
    ann_json = root / "annotations" / "instances.json"
    ann_json.write_text(json.dumps(data))
    return ann_json, img_root


def expected_masks(ann_json: Path, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(person, crowd) uint8 {0,1} masks as drawn: non-crowd people, and crowd regions."""
    z = np.load(Path(ann_json).parent.parent / "truth" / f"{image_id}.npz")
    return z["person"], z["crowd"]


def expected_mask(ann_json: Path, image_id: int) -> np.ndarray:
    """The person-vs-background target with crowd counted as person (the default)."""
    person, crowd = expected_masks(ann_json, image_id)
    return (person | crowd).astype(np.uint8)
