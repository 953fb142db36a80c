"""A public person dataset, as its publisher ships it, to a COCO person set `train/` reads.

`python -m train convert FORMAT ROOT --out data/sources/NAME`

ROOT is the dataset's folder as unpacked from the publisher's download; the images are
copied to OUT/images/NAME/... and OUT/annotations.json holds one person mask per labelled
person (compressed RLE), with `source`, `group` and `kind` on every image. Benchmark
validation and test images are left out by name (train/exclusion.py); the report says how
many. FORMATs and their layouts (details and licences in DATASETS.md):

  aisegment    AISegment.com matting_human_datasets: clip_img/B/clip_B/N.jpg + matting/B/matting_B/N.png (RGBA)
  p3m          P3M-10k: train/blurred_image/N.jpg + train/mask/N.png (alpha); validation/ is left out
  cihp         CIHP (LIP multi-person): Training/Images/N.jpg + Training/Human_ids/N.png (instance ids)
  supervisely  Supervisely Person: DS/img/N.png + DS/ann/N.png.json (polygons and bitmaps)
  davis        DAVIS 2016: JPEGImages/480p/SEQ/N.jpg + Annotations/480p/SEQ/N.png; val sequences left out
  pairs        any folder pair: --image-dir and --mask-dir, same stems, mask > 127 is person
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vbg import VbgError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass
class Item:
    """One image of a publisher's layout: where it is and how to read its people."""

    image: Path
    rel: str  # path under OUT/images/SOURCE/ (keeps the publisher's names)
    people: Callable[[], list[np.ndarray]]  # one uint8 {0,1} mask per person
    group: str | None = None  # clip name for video frames
    kind: str | None = None


def _images(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTS)


def _need(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise VbgError(
            f"{path} does not exist: not a {what} layout (see python -m train convert --help)"
        )
    return path


def _alpha_mask(path: Path, channel: int | None = None) -> list[np.ndarray]:
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise VbgError(f"cannot read mask {path}")
    if m.ndim == 3:
        m = m[..., channel] if channel is not None else m.max(axis=2)
    return [(m > 127).astype(np.uint8)]


def _id_masks(path: Path) -> list[np.ndarray]:
    """An instance-id PNG (0 = background, k = person k; palette or grey) -> one mask each."""
    from PIL import Image

    ids = np.array(Image.open(path))
    if ids.ndim == 3:
        ids = ids[..., 0]
    return [(ids == k).astype(np.uint8) for k in np.unique(ids) if k != 0]


# ------------------------------------------------------------------------ layouts


def aisegment_items(root: Path) -> Iterator[Item]:
    clip = _need(root / "clip_img", "AISegment matting_human_datasets")
    for img in _images(clip):
        rel = img.relative_to(clip)
        parts = list(rel.parts)
        # clip_img/1803151818/clip_00000000/N.jpg <-> matting/1803151818/matting_00000000/N.png
        parts[-2] = parts[-2].replace("clip_", "matting_", 1)
        mask = (root / "matting").joinpath(*parts).with_suffix(".png")
        if mask.is_file():
            yield Item(img, str(rel), lambda m=mask: _alpha_mask(m, 3), kind="portrait")


def p3m_items(root: Path) -> Iterator[Item]:
    # Only train/: validation/P3M-500-P and P3M-500-NP are the benchmark's test sets.
    train = _need(root / "train", "P3M-10k")
    images = (
        train / "blurred_image" if (train / "blurred_image").is_dir() else train / "original_image"
    )
    for img in _images(_need(images, "P3M-10k")):
        mask = train / "mask" / (img.stem + ".png")
        if mask.is_file():
            yield Item(img, img.name, lambda m=mask: _alpha_mask(m))


def cihp_items(root: Path) -> Iterator[Item]:
    # Only Training/: Validation/ and Testing/ are the benchmark's.
    base = (
        root / "instance-level_human_parsing"
        if (root / "instance-level_human_parsing").is_dir()
        else root
    )
    train = _need(base / "Training", "CIHP")
    for img in _images(_need(train / "Images", "CIHP")):
        ids = train / "Human_ids" / (img.stem + ".png")
        if ids.is_file():
            yield Item(img, img.name, lambda m=ids: _id_masks(m))


def _supervisely_object(obj: dict, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    if obj.get("geometryType") == "bitmap":
        bm = obj["bitmap"]
        png = zlib.decompress(base64.b64decode(bm["data"]))
        patch = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        patch = (
            patch[..., 3]
            if patch.ndim == 3 and patch.shape[2] == 4
            else patch.reshape(patch.shape[0], -1)
        ) > 0
        x, y = (int(v) for v in bm["origin"])
        ph, pw = min(patch.shape[0], h - y), min(patch.shape[1], w - x)
        m[y : y + ph, x : x + pw] = patch[:ph, :pw]
    elif obj.get("geometryType") == "polygon":
        pts = obj["points"]
        cv2.fillPoly(m, [np.round(np.array(pts["exterior"], np.float32)).astype(np.int32)], 1)
        for hole in pts.get("interior", []):
            cv2.fillPoly(m, [np.round(np.array(hole, np.float32)).astype(np.int32)], 0)
    return m


def _supervisely_people(ann: Path) -> list[np.ndarray]:
    d = json.loads(ann.read_text())
    h, w = int(d["size"]["height"]), int(d["size"]["width"])
    objs = [o for o in d.get("objects", []) if str(o.get("classTitle", "")).startswith("person")]
    masks = [_supervisely_object(o, h, w) for o in objs]
    tags = {t.get("name") for t in d.get("tags", [])}
    if "multipart-person" in tags and masks:
        # One person labelled in several pieces: one instance, not several people.
        return [np.maximum.reduce(masks)]
    return masks


def supervisely_items(root: Path) -> Iterator[Item]:
    found = False
    for ann_dir in sorted(root.rglob("ann")):
        img_dir = ann_dir.parent / "img"
        if not img_dir.is_dir():
            continue
        found = True
        for img in _images(img_dir):
            ann = ann_dir / (img.name + ".json")
            if not ann.is_file():
                continue
            tags = {t.get("name") for t in json.loads(ann.read_text()).get("tags", [])}
            if "not-marked-people" in tags:
                continue  # people in the photo without masks would be taught as background
            rel = f"{img_dir.parent.name}/{img.name}"
            yield Item(img, rel, lambda a=ann: _supervisely_people(a))
    if not found:
        raise VbgError(
            f"{root} holds no DATASET/img + DATASET/ann folders: not a Supervisely project"
        )


def davis_items(root: Path) -> Iterator[Item]:
    images = _need(root / "JPEGImages" / "480p", "DAVIS 2016")
    for seq in sorted(p for p in images.iterdir() if p.is_dir()):
        for img in _images(seq):
            mask = root / "Annotations" / "480p" / seq.name / (img.stem + ".png")
            if mask.is_file():
                rel = f"{seq.name}/{img.name}"
                yield Item(
                    img, rel, lambda m=mask: _alpha_mask(m), group=f"davis/{seq.name}", kind="video"
                )


def pairs_items(image_dir: Path, mask_dir: Path) -> Iterator[Item]:
    masks = {p.stem: p for p in _images(_need(mask_dir, "mask folder"))}
    for img in _images(_need(image_dir, "image folder")):
        if img.stem in masks:
            yield Item(
                img, str(img.relative_to(image_dir)), lambda m=masks[img.stem]: _alpha_mask(m)
            )


FORMATS: dict[str, Callable[[Path], Iterator[Item]]] = {
    "aisegment": aisegment_items,
    "p3m": p3m_items,
    "cihp": cihp_items,
    "supervisely": supervisely_items,
    "davis": davis_items,
}


# ------------------------------------------------------------------------ conversion


def convert(items: Iterator[Item], source: str, out: Path, limit: int = 0) -> dict[str, int]:
    """Copies images and writes OUT/annotations.json; returns counts (kept, excluded, ...)."""
    from train.data import load_image
    from train.exclusion import excluded_reason
    from train.sources.cocowriter import CocoWriter

    writer = CocoWriter(f"vbg conversion of {source}")
    counts = {"kept": 0, "excluded": 0, "no_person": 0}
    for item in items:
        if limit and counts["kept"] >= limit:
            break
        if excluded_reason(source, item.rel, item.group):
            counts["excluded"] += 1
            continue
        people = item.people()
        if not any(m.any() for m in people):
            counts["no_person"] += 1
            continue
        h, w = people[0].shape
        img = load_image(item.image)
        if img.shape[:2] != (h, w):
            raise VbgError(f"{item.image} is {img.shape[1]}x{img.shape[0]}, its mask {w}x{h}")
        name = f"images/{source}/{item.rel}"
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.image, out / name)
        writer.add(name, (h, w), people, source=source, group=item.group, kind=item.kind)
        counts["kept"] += 1
    writer.write(out / "annotations.json")
    counts["annotations"] = len(writer.annotations)
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=[*FORMATS, "pairs"], help="the publisher's layout")
    p.add_argument("root", nargs="?", help="the dataset folder as unpacked from the download")
    p.add_argument("--out", required=True, help="output folder (images/, annotations.json)")
    p.add_argument("--source", help="source name written on every image (default: the format)")
    p.add_argument("--image-dir", help="pairs: folder of photos")
    p.add_argument("--mask-dir", help="pairs: folder of masks with the photos' stems")
    p.add_argument("--limit", type=int, default=0, help="stop after this many images (0 = all)")


def run(args: argparse.Namespace) -> int:
    source = args.source or args.format
    if args.format == "pairs":
        if not args.image_dir or not args.mask_dir:
            raise VbgError("pairs needs --image-dir and --mask-dir")
        items = pairs_items(Path(args.image_dir), Path(args.mask_dir))
    else:
        if not args.root:
            raise VbgError(f"{args.format} needs the dataset's ROOT folder")
        items = FORMATS[args.format](Path(args.root))
    counts = convert(items, source, Path(args.out), args.limit)
    print(f"convert {args.format}: {counts} -> {Path(args.out) / 'annotations.json'}")
    return 0
