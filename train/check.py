"""`python -m train check`: verify a COCO person set before anyone trains on it, then
describe it.

Problems (the data is broken; exit status 1, each one listed):
- the JSON does not load, or lacks images/annotations/categories lists;
- duplicate image, annotation or category ids; entries missing required fields;
- an annotation whose image_id is not an image, or whose category_id is not a category;
- an image file that is missing, does not decode, is truncated (a JPEG without its end
  marker, a PNG without IEND: some OpenCV versions decode those with only a warning and
  grey rows, so the end of the file is checked too), or whose
  size differs from the JSON's width/height (read as stored: EXIF orientation ignored, as
  COCO's masks are in stored pixel order);
- a segmentation that does not decode (malformed polygon, RLE counts that do not add up to
  the image, an RLE of another size) or lies outside the image (bbox or polygon vertices
  more than `TOLERANCE` px beyond the borders); an iscrowd that is not 0 or 1.

Warnings (reported, not fatal): annotations whose mask is empty, JPEGs whose EXIF
orientation would rotate them in a photo viewer.

Skipped (counted with the reason): what a CocoPersonDataset does not train on: annotations
of other categories, broken entries, images without any person (kept only at
empty_fraction).

Then the exploratory analysis (train/eda.py), per `source` when the images carry one:
report.md, persons_per_image.png, image_sizes.png, area_fraction.png and check.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from train import eda
from vbg import VbgError

PERSON = 1
TOLERANCE = 1.0  # px a bbox/polygon may overshoot the border (COCO rounds outlines outward)
JPEG_EOI = b"\xff\xd9"
PNG_IEND = b"IEND\xaeB`\x82"


@dataclass
class Problem:
    kind: str
    detail: str
    image_id: Any = None
    ann_id: Any = None
    file: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.image_id is not None:
            where.append(f"image {self.image_id}")
        if self.ann_id is not None:
            where.append(f"annotation {self.ann_id}")
        return f"{self.kind}: {self.detail}" + (f" ({', '.join(where)})" if where else "")


@dataclass
class CheckResult:
    ann: str
    images_root: str
    counts: dict[str, int] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # per-image stats for the EDA

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_kinds(self) -> Counter:
        return Counter(p.kind for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "ann": self.ann,
            "images_root": self.images_root,
            "counts": self.counts,
            "skipped": dict(self.skipped),
            "problem_kinds": dict(self.problem_kinds()),
            "problems": [asdict(p) for p in self.problems],
            "warnings": [asdict(p) for p in self.warnings],
            "summary": eda.summarize(self.rows) if self.rows else {},
        }


# ------------------------------------------------------------------------------- files


def check_image_file(
    path: Path, width: int, height: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(problems, warnings) of one image file, each as (kind, detail)."""
    problems: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [("missing_file", "image file does not exist")], []
    except OSError as e:
        return [("unreadable_image", f"cannot read the file: {e.strerror or e}")], []
    # A cut-off file: depending on the version, OpenCV refuses it or decodes it with a
    # warning and grey rows at the bottom. The end marker tells either way.
    is_jpeg, is_png = data[:2] == b"\xff\xd8", data[:8] == b"\x89PNG\r\n\x1a\n"
    truncated = (is_jpeg and not data.rstrip(b"\x00").endswith(JPEG_EOI)) or (
        is_png and not data.endswith(PNG_IEND)
    )
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data else None
    if truncated:
        what = (
            "JPEG ends without its end-of-image marker"
            if is_jpeg
            else "PNG ends without its IEND chunk"
        )
        problems.append(("truncated_image", f"{what} (truncated file)"))
    if img is None:
        if not truncated:
            problems.append(("unreadable_image", "the file does not decode as an image"))
        return problems, warnings
    h, w = img.shape[:2]
    if (h, w) != (height, width):
        problems.append(("size_mismatch", f"file is {w}x{h}, the JSON says {width}x{height}"))
    if is_jpeg and b"Exif" in data[:65536]:
        turned = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if turned is not None and turned.shape[:2] != img.shape[:2]:
            warnings.append(
                (
                    "exif_rotated",
                    "EXIF orientation rotates this photo in viewers; "
                    "training reads the stored pixels, as COCO's masks are",
                )
            )
    return problems, warnings


def _check_image_job(
    job: tuple[str, int, int],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    path, w, h = job
    return check_image_file(Path(path), w, h)


# ------------------------------------------------------------------------------- masks


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def decode_segmentation(seg: Any, h: int, w: int) -> np.ndarray:
    """uint8 HxW {0,1} mask of a COCO segmentation, validated first: pycocotools reads
    malformed RLE counts without complaint (it returns uninitialised memory)."""
    from pycocotools import mask as mask_utils

    from vbg.evaluate import rle_counts_from_string

    if isinstance(seg, list):
        if not seg:
            raise ValueError("empty polygon list")
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise ValueError("a polygon needs an even number (>= 6) of coordinates")
            if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in poly):
                raise ValueError("polygon coordinates must be finite numbers")
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            if (
                xy[:, 0].min() < -TOLERANCE
                or xy[:, 1].min() < -TOLERANCE
                or xy[:, 0].max() > w + TOLERANCE
                or xy[:, 1].max() > h + TOLERANCE
            ):
                raise IndexError(
                    f"polygon spans x {xy[:, 0].min():g}..{xy[:, 0].max():g}, "
                    f"y {xy[:, 1].min():g}..{xy[:, 1].max():g}; the image is {w}x{h}"
                )
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)))
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not isinstance(size, list) or len(size) != 2 or not all(_is_int(v) for v in size):
            raise ValueError("RLE needs a size [height, width]")
        if [int(size[0]), int(size[1])] != [h, w]:
            raise IndexError(f"RLE size is {size[1]}x{size[0]}, the image is {w}x{h}")
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                raise ValueError("uncompressed RLE counts must be non-negative integers")
            runs = counts
            rle = mask_utils.frPyObjects(seg, h, w)
        elif isinstance(counts, str):
            runs = rle_counts_from_string(counts)
            if any(v < 0 for v in runs):
                raise ValueError("RLE counts string decodes to negative runs")
            rle = {"size": [h, w], "counts": counts.encode("ascii")}
        else:
            raise ValueError("RLE counts must be a string or a list of integers")
        if sum(runs) != h * w:
            raise ValueError(f"RLE runs cover {sum(runs)} pixels, the image has {h * w}")
        return mask_utils.decode(rle)
    raise ValueError(
        f"segmentation must be polygons (list) or RLE (dict), not {type(seg).__name__}"
    )


# ------------------------------------------------------------------------------- the check


def _load_json(ann: Path, res: CheckResult) -> dict[str, Any] | None:
    try:
        data = json.loads(ann.read_bytes())
    except FileNotFoundError:
        res.problems.append(Problem("json", f"annotation file {ann} does not exist"))
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        res.problems.append(Problem("json", f"annotation file is not valid JSON: {e}"))
        return None
    if not isinstance(data, dict):
        res.problems.append(Problem("json", "the JSON's top level must be an object"))
        return None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            res.problems.append(Problem("json", f"the JSON has no '{key}' list"))
    return None if res.problems else data


def check_dataset(
    ann: str | Path, images_root: str | Path, *, workers: int = 1, progress: bool = False
) -> CheckResult:
    """Every check in the module docstring, plus the per-image rows the EDA needs."""
    ann, images_root = Path(ann), Path(images_root)
    res = CheckResult(ann=str(ann), images_root=str(images_root))
    data = _load_json(ann, res)
    if data is None:
        return res

    def problem(kind: str, detail: str, **where: Any) -> None:
        res.problems.append(Problem(kind, detail, **where))

    # --- categories
    cat_ids: set[Any] = set()
    for c in data["categories"]:
        cid = c.get("id") if isinstance(c, dict) else None
        if not _is_int(cid):
            problem("bad_category_entry", f"category without an integer id: {str(c)[:80]}")
        elif cid in cat_ids:
            problem("duplicate_category_id", f"category id {cid} appears twice")
        else:
            cat_ids.add(cid)
    if PERSON not in cat_ids:
        problem("json", f"no category with id {PERSON} (person)")

    # --- images
    images: dict[int, dict[str, Any]] = {}
    for im in data["images"]:
        iid = im.get("id") if isinstance(im, dict) else None
        if not _is_int(iid):
            problem("bad_image_entry", f"image entry without an integer id: {str(im)[:80]}")
            res.skipped["broken image entry"] += 1
            continue
        if iid in images:
            problem("duplicate_image_id", f"image id {iid} appears twice", image_id=iid)
            res.skipped["duplicate image id"] += 1
            continue
        fn, w, h = im.get("file_name"), im.get("width"), im.get("height")
        if not isinstance(fn, str) or not fn or not _is_int(w) or not _is_int(h) or w < 1 or h < 1:
            problem(
                "bad_image_entry",
                "image needs file_name and positive integer width/height",
                image_id=iid,
            )
            res.skipped["broken image entry"] += 1
            continue
        images[iid] = im

    # --- annotations
    anns_of: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
    ann_ids: set[Any] = set()
    n_person = n_crowd = n_other = 0
    for a in data["annotations"]:
        aid = a.get("id") if isinstance(a, dict) else None
        if not _is_int(aid):
            problem("bad_annotation_entry", f"annotation without an integer id: {str(a)[:80]}")
            res.skipped["broken annotation entry"] += 1
            continue
        if aid in ann_ids:
            problem("duplicate_annotation_id", f"annotation id {aid} appears twice", ann_id=aid)
            res.skipped["duplicate annotation id"] += 1
            continue
        ann_ids.add(aid)
        missing = [k for k in ("image_id", "category_id", "segmentation") if k not in a]
        if missing:
            problem("bad_annotation_entry", f"annotation lacks {', '.join(missing)}", ann_id=aid)
            res.skipped["broken annotation entry"] += 1
            continue
        iid, cid = a["image_id"], a["category_id"]
        if not _is_int(iid) or iid not in images:
            problem(
                "unknown_image_id",
                f"annotation points at image id {iid!r}, which is not an image",
                ann_id=aid,
            )
            res.skipped["annotation of an unknown image"] += 1
            continue
        if not _is_int(cid) or cid not in cat_ids:
            problem(
                "unknown_category",
                f"category_id {cid!r} is not a category",
                image_id=iid,
                ann_id=aid,
            )
            res.skipped["annotation of an unknown category"] += 1
            continue
        if a.get("iscrowd", 0) not in (0, 1):
            problem(
                "bad_iscrowd",
                f"iscrowd is {a.get('iscrowd')!r}, not 0 or 1",
                image_id=iid,
                ann_id=aid,
            )
            res.skipped["broken annotation entry"] += 1
            continue
        if cid != PERSON:
            n_other += 1
            res.skipped["annotation of another category (not person)"] += 1
            continue
        if a.get("iscrowd", 0) == 1:
            n_crowd += 1
        else:
            n_person += 1
        anns_of[iid].append(a)

    # --- image files
    order = sorted(images)
    jobs = [
        (
            str(images_root / images[i]["file_name"]),
            int(images[i]["width"]),
            int(images[i]["height"]),
        )
        for i in order
    ]
    from tqdm import tqdm

    bar = dict(total=len(jobs), desc="images", unit="img", disable=not progress, leave=False)
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(tqdm(pool.map(_check_image_job, jobs, chunksize=32), **bar))
    else:
        outcomes = [_check_image_job(j) for j in tqdm(jobs, **bar)]
    bad_files: set[int] = set()
    for iid, (probs, warns) in zip(order, outcomes, strict=True):
        fn = images[iid]["file_name"]
        for kind, detail in probs:
            problem(kind, detail, image_id=iid, file=fn)
        for kind, detail in warns:
            res.warnings.append(Problem(kind, detail, image_id=iid, file=fn))
        if probs:
            bad_files.add(iid)
            res.skipped[f"image: {probs[0][0].replace('_', ' ')}"] += 1

    # --- masks and per-image statistics
    for iid in tqdm(order, desc="masks", unit="img", disable=not progress, leave=False):
        im = images[iid]
        h, w = int(im["height"]), int(im["width"])
        union = np.zeros((h, w), np.uint8)
        persons = crowd = 0
        for a in anns_of[iid]:
            aid = a["id"]
            try:
                m = decode_segmentation(a["segmentation"], h, w)
            except IndexError as e:
                problem("mask_outside_image", str(e), image_id=iid, ann_id=aid)
                res.skipped["annotation outside its image"] += 1
                continue
            except (ValueError, TypeError, OverflowError, UnicodeError) as e:
                problem(
                    "bad_segmentation",
                    f"segmentation does not decode: {e}",
                    image_id=iid,
                    ann_id=aid,
                )
                res.skipped["annotation that does not decode"] += 1
                continue
            bbox = a.get("bbox")
            if bbox is not None:
                ok = (
                    isinstance(bbox, list)
                    and len(bbox) == 4
                    and all(isinstance(v, (int, float)) for v in bbox)
                )
                if not ok:
                    problem(
                        "bad_annotation_entry",
                        f"bbox must be [x, y, w, h], not {bbox!r}",
                        image_id=iid,
                        ann_id=aid,
                    )
                elif (
                    bbox[0] < -TOLERANCE
                    or bbox[1] < -TOLERANCE
                    or bbox[2] < 0
                    or bbox[3] < 0
                    or bbox[0] + bbox[2] > w + TOLERANCE
                    or bbox[1] + bbox[3] > h + TOLERANCE
                ):
                    problem(
                        "mask_outside_image",
                        f"bbox {bbox} reaches outside the {w}x{h} image",
                        image_id=iid,
                        ann_id=aid,
                    )
            if not m.any():
                res.warnings.append(
                    Problem(
                        "empty_mask", "the segmentation covers no pixel", image_id=iid, ann_id=aid
                    )
                )
            union |= m
            if a.get("iscrowd", 0) == 1:
                crowd += 1
            else:
                persons += 1
        if persons == 0 and crowd == 0:
            res.skipped["image without a person (kept at empty_fraction)"] += 1
        res.rows.append(
            {
                "id": iid,
                "file_name": im["file_name"],
                "source": im.get("source"),
                "group": im.get("group"),
                "width": w,
                "height": h,
                "persons": persons,
                "crowd": crowd,
                "area_fraction": float(union.mean()),
                "file_ok": iid not in bad_files,
            }
        )

    res.counts = {
        "images": len(data["images"]),
        "valid_image_entries": len(images),
        "image_files_ok": len(images) - len(bad_files),
        "annotations": len(data["annotations"]),
        "person_annotations": n_person,
        "crowd_annotations": n_crowd,
        "other_category_annotations": n_other,
        "categories": len(data["categories"]),
        "images_with_person": sum(1 for r in res.rows if r["persons"] or r["crowd"]),
        "images_without_person": sum(1 for r in res.rows if not (r["persons"] or r["crowd"])),
        "groups": len(
            {r["group"] if r["group"] not in (None, "") else f"#{r['id']}" for r in res.rows}
        ),
        "problems": len(res.problems),
        "warnings": len(res.warnings),
    }
    return res


# ------------------------------------------------------------------------------- report


def write_report(res: CheckResult, out_dir: str | Path, max_listed: int = 200) -> Path:
    """DIR/report.md, DIR/check.json and the EDA plots; returns the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = eda.plot_all(res.rows, out_dir)
    (out_dir / "check.json").write_text(json.dumps(res.to_dict(), indent=2, default=str) + "\n")

    lines = [
        "# Data check",
        "",
        f"- annotations: `{res.ann}`",
        f"- images root: `{res.images_root}`",
        f"- verdict: **{'PASS' if res.ok else 'FAIL'}** ({len(res.problems)} problems, {len(res.warnings)} warnings)",
        "",
        "## Counts",
        "",
        "| | count |",
        "|---|---|",
        *[f"| {k.replace('_', ' ')} | {v:,} |" for k, v in res.counts.items()],
        "",
        "## Skipped, and why",
        "",
    ]
    if res.skipped:
        lines += [
            "| reason | count |",
            "|---|---|",
            *[f"| {k} | {v:,} |" for k, v in sorted(res.skipped.items())],
        ]
    else:
        lines.append("Nothing.")
    for title, items in (("Problems", res.problems), ("Warnings", res.warnings)):
        lines += ["", f"## {title}", ""]
        if not items:
            lines.append("None.")
            continue
        kinds = Counter(p.kind for p in items)
        lines.append(", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())))
        lines.append("")
        lines += [f"- {p}" for p in items[:max_listed]]
        if len(items) > max_listed:
            lines.append(f"- ... and {len(items) - max_listed} more (all in check.json)")
    if res.rows:
        lines += [
            "",
            "## The data",
            "",
            "Person annotations exclude crowd regions; person area is the union of all person "
            "masks (crowd included) over the image's pixels.",
            "",
            eda.markdown_summary(eda.summarize(res.rows)),
            *[f"![{p.stem.replace('_', ' ')}]({p.name})\n" for p in plots],
        ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


# ------------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ann", required=True, help="COCO instances JSON")
    p.add_argument(
        "--images", required=True, help="folder the JSON's file_name entries are relative to"
    )
    p.add_argument("--out", required=True, help="folder for report.md, check.json and the plots")
    p.add_argument(
        "--workers", type=int, default=1, help="processes that decode the images (default 1)"
    )
    p.add_argument(
        "--mix",
        help="also report on the combined training pool of this mix file (pool.md: per "
        "source and kind, duplicates across sources, images also in the evaluation set)",
    )
    p.add_argument(
        "--max-listed",
        type=int,
        default=200,
        help="problems listed in report.md (all are in check.json)",
    )


def run(args: argparse.Namespace) -> int:
    """0 when the data is sound, 1 (with the problems on stderr) when it is broken."""
    if not Path(args.images).is_dir():
        raise VbgError(f"images folder {args.images} does not exist")
    res = check_dataset(
        args.ann, args.images, workers=max(1, args.workers), progress=sys.stderr.isatty()
    )
    report = write_report(res, args.out, max_listed=args.max_listed)
    c = res.counts
    if c:
        print(
            f"checked {c['images']:,} images, {c['annotations']:,} annotations "
            f"({c['person_annotations']:,} person, {c['crowd_annotations']:,} crowd, "
            f"{c['other_category_annotations']:,} other); {c['images_without_person']:,} images without a person"
        )
    for reason, n in sorted(res.skipped.items()):
        print(f"  skipped {n:,}: {reason}")
    if res.warnings:
        print(
            f"{len(res.warnings)} warnings: "
            + ", ".join(
                f"{k} {n}" for k, n in sorted(Counter(w.kind for w in res.warnings).items())
            )
        )
    print(f"report: {report}")
    mix_ok = check_mix(args, res) if args.mix else True
    if res.ok and mix_ok:
        print("data OK")
        return 0
    if res.ok:
        print(
            "the training pool is broken or overlaps the evaluation set (see above)",
            file=sys.stderr,
        )
        return 1
    print(f"data is broken: {len(res.problems)} problems", file=sys.stderr)
    for p in res.problems[:50]:
        print(f"  {p}", file=sys.stderr)
    if len(res.problems) > 50:
        print(
            f"  ... and {len(res.problems) - 50} more in {Path(args.out) / 'check.json'}",
            file=sys.stderr,
        )
    return 1


def check_mix(args: argparse.Namespace, res: CheckResult) -> bool:
    """Checks every pool of the mix, then reports on the combined pool; False on a
    broken pool or an evaluation image inside the pool."""
    from train.pool_check import check_pool
    from train.sampler import load_mix

    rows_by_set = [res.rows]
    ok = True
    for pool in load_mix(args.mix).pools:
        r = check_dataset(pool.ann, pool.images, workers=max(1, args.workers), progress=False)
        print(f"pool {pool.ann}: {r.counts.get('images', 0):,} images, {len(r.problems)} problems")
        ok = ok and r.ok
        rows_by_set.append(r.rows)
    s = check_pool(args.ann, args.images, args.mix, Path(args.out), rows_by_set)
    print(
        f"pool: {s['pool_images']:,} images; per source "
        + ", ".join(f"{k} {v:,}" for k, v in s["per_source"].items())
    )
    print("pool per kind: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s["per_kind"].items())))
    print(
        f"pool: {len(s['cross_source_duplicates'])} cross-source duplicates, "
        f"{len(s['removed'])} removed -> {s['pool_after_dedup']:,} images; "
        f"{len(s['eval_leaks'])} pool images also in the evaluation set; "
        f"report {Path(args.out) / 'pool.md'}"
    )
    return ok and not s["eval_leaks"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train check", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except VbgError as e:
        print(f"train check: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
