"""`vbg eval`: any model on any COCO-format person set, through the runtime's own path.

The prediction for an image is exactly what `vbg process` would composite with:
`FrameProcessor.mask(frame)` (preprocessing, engine, temporal smoothing, upsampling and
feathering to the full frame), thresholded at 0.5 (alpha >= 128). The ground truth is the
union of the image's category-1 annotations (crowd regions count as person).

Still images are independent (the processor is reset before each). Images sharing a
`group` (a field this project's corpus adds to COCO) are frames of one video: they are
taken in file-name order with temporal smoothing running, and for them the flicker metric
dtSSD is reported too.

The runtime install has no pycocotools, so COCO's compressed RLE and polygons are decoded
here (RLE in numpy, polygons with cv2.fillPoly); tests check the RLE against pycocotools.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vbg import VbgError
from vbg.metrics import boundary_iou, dtssd, image_metrics, mean_metrics

PERSON = 1


# ---------------------------------------------------------------- COCO masks without pycocotools


def rle_counts_from_string(s: str | bytes) -> list[int]:
    """Decodes COCO's compressed RLE counts string.

    Each count is a little-endian run of 5-bit groups stored as chr(48 + group), bit 0x20
    meaning "another group follows" and bit 0x10 of the last group the sign; from the 4th
    count on, each value is stored as the difference to the count two places earlier (the
    previous run of the same colour), which keeps the numbers small.
    """
    if isinstance(s, bytes):
        s = s.decode("ascii")
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated RLE counts string")
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)  # sign-extend
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_counts_to_string(counts: Sequence[int]) -> str:
    """The inverse of `rle_counts_from_string` (used to write test sets without pycocotools)."""
    out: list[str] = []
    for i, cnt in enumerate(counts):
        x = int(cnt) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed string or uncompressed list counts) -> uint8 HxW mask {0,1}.

    Runs alternate background/foreground starting with background, over the pixels in
    column-major (Fortran) order.
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = rle_counts_from_string(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and (counts.min() < 0 or counts.sum() != h * w):
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h * w}")
    values = np.arange(counts.size, dtype=np.uint8) & 1
    flat = np.repeat(values, counts)
    if flat.size != h * w:  # empty counts
        flat = np.zeros(h * w, np.uint8)
    return flat.reshape((h, w), order="F")


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """uint8/bool HxW mask -> COCO compressed RLE {'size': [h, w], 'counts': str}."""
    h, w = mask.shape
    flat = (np.asarray(mask).reshape(-1, order="F") > 0).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(h), int(w)], "counts": rle_counts_to_string(runs)}


def polygons_to_mask(polygons: Sequence[Sequence[float]], h: int, w: int) -> np.ndarray:
    """COCO polygons [[x1, y1, x2, y2, ...], ...] -> uint8 HxW mask {0,1} (their union).

    A pixel (covering [x, x+1) x [y, y+1)) is inside when the polygon covers at least half
    of it, measured on an 8x supersampled fill of the polygon's bounding box. Plain
    cv2.fillPoly marks every pixel the outline touches (about 5% more area than
    pycocotools on small shapes); this agrees with pycocotools to within ~1 pixel per
    boundary row.
    """
    ss = 8
    mask = np.zeros((h, w), np.uint8)
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(xy) < 3:
            continue
        x0 = max(0, int(np.floor(xy[:, 0].min())))
        y0 = max(0, int(np.floor(xy[:, 1].min())))
        x1 = min(w, int(np.ceil(xy[:, 0].max())) + 1)
        y1 = min(h, int(np.ceil(xy[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        big = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss), np.uint8)
        pts = np.round((xy - (x0, y0)) * ss * 8).astype(np.int32)  # 3 fractional bits
        cv2.fillPoly(big, [pts], 255, lineType=cv2.LINE_8, shift=3)
        cover = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        mask[y0:y1, x0:x1] |= (cover >= 128).astype(np.uint8)
    return mask


def annotation_mask(ann: dict[str, Any], h: int, w: int) -> np.ndarray:
    """One COCO annotation's segmentation -> uint8 HxW mask {0,1}."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        return polygons_to_mask(seg, h, w)
    if isinstance(seg, dict):
        m = rle_decode(seg)
        if m.shape != (h, w):
            raise ValueError(f"RLE size {m.shape} differs from the image's {(h, w)}")
        return m
    raise ValueError(f"unsupported segmentation of type {type(seg).__name__}")


# ---------------------------------------------------------------- the data set


@dataclass
class EvalImage:
    id: int
    file_name: str
    height: int
    width: int
    source: str | None = None
    group: str | None = None
    anns: list[dict[str, Any]] = field(default_factory=list)

    def truth(self) -> np.ndarray:
        """Union of the person annotations (crowd included): uint8 HxW {0,1}."""
        m = np.zeros((self.height, self.width), np.uint8)
        for a in self.anns:
            try:
                np.maximum(m, annotation_mask(a, self.height, self.width), out=m)
            except (ValueError, KeyError, TypeError) as e:
                raise VbgError(f"annotation {a.get('id')} of image {self.file_name}: {e}") from e
        return m


def load_person_set(ann_file: str | Path) -> list[EvalImage]:
    """Images of a COCO json with their category-1 annotations attached."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise VbgError(f"annotation file {ann_file} does not exist")
    try:
        d = json.loads(ann_file.read_text())
        images = {
            int(im["id"]): EvalImage(
                id=int(im["id"]),
                file_name=str(im["file_name"]),
                height=int(im["height"]),
                width=int(im["width"]),
                source=im.get("source"),
                group=im.get("group"),
            )
            for im in d["images"]
        }
        for a in d.get("annotations", []):
            if int(a.get("category_id", -1)) == PERSON and int(a["image_id"]) in images:
                images[int(a["image_id"])].anns.append(a)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VbgError(f"annotation file {ann_file} is not valid JSON: {e}") from e
    except (KeyError, TypeError, ValueError) as e:
        raise VbgError(
            f"annotation file {ann_file} is not COCO format ({type(e).__name__}: {e})"
        ) from e
    if not images:
        raise VbgError(f"annotation file {ann_file} lists no images")
    return list(images.values())


def sequences(images: list[EvalImage]) -> list[list[EvalImage]]:
    """Still images as one-image sequences; each video group as its frames in file-name order.

    A group with a single image is a still photo (this corpus gives every image a group).
    """
    by_group: dict[str, list[EvalImage]] = {}
    order: list[list[EvalImage] | str] = []
    for im in images:
        if im.group is None:
            order.append([im])
            continue
        if im.group not in by_group:
            by_group[im.group] = []
            order.append(im.group)
        by_group[im.group].append(im)
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(sorted(by_group[item], key=lambda im: im.file_name))
        else:
            out.append(item)
    return out


# ---------------------------------------------------------------- evaluation


class Masker(Protocol):
    """What is evaluated: `FrameProcessor` or, in tests, a fake with the same two methods."""

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray: ...  # alpha uint8 HxW

    def reset(self) -> None: ...


class _Scaled(Sequence):
    """uint8 masks seen as float32 in [0, 1], converted one at a time (saves memory on long
    videos: dtssd only looks at two neighbouring frames at once)."""

    def __init__(self, masks: list[np.ndarray], scale: float) -> None:
        self._m, self._s = masks, scale

    def __len__(self) -> int:
        return len(self._m)

    def __getitem__(self, i):  # type: ignore[override]
        return self._m[i].astype(np.float32) * (1.0 / self._s)


def evaluate(
    ann_file: str | Path,
    images_root: str | Path,
    masker: Masker,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Runs `masker` over the set; returns the report (see module docstring for the keys)."""
    root = Path(images_root)
    images = load_person_set(ann_file)
    seqs = sequences(images)
    rows: list[dict[str, Any]] = []
    group_dtssd: dict[str, float] = {}
    from vbg.pipeline import Progress

    bar = Progress(len(images), enabled=progress, label="eval")
    for seq in seqs:
        masker.reset()  # a still, or the first frame of a video: no state carried over
        video = len(seq) > 1
        preds: list[np.ndarray] = []
        truths: list[np.ndarray] = []
        for im in seq:
            path = root / im.file_name
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise VbgError(f"cannot read image {path}")
            if frame.shape[:2] != (im.height, im.width):
                raise VbgError(
                    f"image {path} is {frame.shape[1]}x{frame.shape[0]} but the annotation file "
                    f"says {im.width}x{im.height}"
                )
            truth = im.truth()
            alpha = masker.mask(frame)
            if alpha.shape != truth.shape:
                raise VbgError(f"predicted mask {alpha.shape} differs from image {truth.shape}")
            pred = alpha >= 128  # probability 0.5 on the 0..255 alpha scale
            row = {"id": im.id, "file_name": im.file_name, "source": im.source, "group": im.group}
            row.update(image_metrics(pred, truth))
            row["boundary_iou"] = boundary_iou(pred, truth)
            rows.append(row)
            if video:
                # Flicker is measured on the soft alpha the user actually sees.
                preds.append(alpha.copy())
                truths.append(truth)
            bar.update()
        if video:
            group_dtssd[str(seq[0].group)] = dtssd(_Scaled(preds, 255.0), _Scaled(truths, 1.0))
    bar.close()

    report: dict[str, Any] = dict(mean_metrics(rows))
    sources = sorted({r["source"] for r in rows if r["source"] is not None})
    if sources:
        report["per_source"] = {
            s: mean_metrics(r for r in rows if r["source"] == s) for s in sources
        }
    if group_dtssd:
        report["dtssd"] = float(np.mean(list(group_dtssd.values())))
        report["dtssd_per_group"] = group_dtssd
    report["per_image"] = rows
    return report


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: overall and per source (and dtSSD when there is video)."""
    lines = [f"{'set':<12} {'images':>7} {'IoU':>7} {'Dice':>7} {'PixAcc':>7} {'BndIoU':>7}"]

    def line(name: str, m: dict[str, Any]) -> str:
        b = m.get("boundary_iou")
        return (
            f"{name:<12} {m['images']:>7d} {m['iou']:>7.4f} {m['dice']:>7.4f} "
            f"{m['pixel_acc']:>7.4f} " + (f"{b:>7.4f}" if b is not None else f"{'-':>7}")
        )

    for name, m in report.get("per_source", {}).items():
        lines.append(line(name, m))
    lines.append(line("all", report))
    if "dtssd" in report:
        lines.append(
            f"dtSSD (flicker, mean over {len(report['dtssd_per_group'])} videos): "
            f"{report['dtssd']:.3f}"
        )
    header = []
    if "model" in report:
        header.append(f"model: {report['model']}  engine: {report.get('engine')}")
    return "\n".join(header + lines)


def run_eval(
    ann_file: str | Path,
    images_root: str | Path,
    *,
    model: str | Path | None = None,
    engine: str = "auto",
    threads: int | None = None,
    tta: bool = True,
    quality: str = "standard",
    follow: bool = True,
    json_out: str | Path | None = None,
    progress: bool = True,
    out=None,
) -> dict[str, Any]:
    """What `vbg eval` does: build the runtime processor, evaluate, print, write JSON."""
    from vbg.pipeline import build_processor

    out = out if out is not None else sys.stdout
    if not Path(images_root).is_dir():
        raise VbgError(f"images folder {images_root} does not exist")
    load_person_set(ann_file)  # fail on a bad annotation file before loading a model
    proc = build_processor(
        model,
        engine=engine,
        threads=threads,
        background=None,
        tta=tta,
        quality=quality,
        follow=follow,
    )
    try:
        report = evaluate(ann_file, images_root, proc, progress=progress)
        card = proc.segmenter.card
        report = {
            **{k: v for k, v in report.items() if k != "per_image"},
            "model": card.name,
            "model_card": str(card.path) if card.path else None,
            "engine": proc.engine_name,
            "tta": tta,
            "quality": quality,
            "follow": proc.roi is not None,
            "ann": str(ann_file),
            "per_image": report["per_image"],
        }
    finally:
        proc.close()
    print(format_table(report), file=out)
    if json_out is not None:
        _write_json_atomic(Path(json_out), report)
    return report


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)
