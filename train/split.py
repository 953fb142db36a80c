"""Train/val/test split that keeps the frames of one video on one side.

Images that share a `group` (frames of one video in this project's corpus) go to the same
split, or near-identical frames would leak from training into the test set; an image
without a group is a group of its own.

How groups are placed: the groups are shuffled with the seed (after sorting them by key, so
the order of the json never matters), laid end to end, and each lands in the split whose
share of the line [0, N) holds its midpoint: [0, 0.75 N) train, then val, then test. For
single images that is exact rounding, so every split is within one image of its target;
a large group shifts the counts by at most half its size.

When images carry a `source`, each source has its own line, so every source is split in
the same proportions (per-source test metrics then rest on a proportionate sample, and a
source's videos are spread over the splits along with its photos). The total is then
within half an image per source of the target, plus half of any large group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError

SPLITS = ("train", "val", "test")


def group_key(image: dict[str, Any]) -> str:
    g = image.get("group")
    return f"group:{g}" if g not in (None, "") else f"image:{image['id']}"


def grouped_split(
    images: Sequence[dict[str, Any]],
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.75, 0.125, 0.125),
) -> dict[str, list[int]]:
    """{"train": ids, "val": ids, "test": ids} (each sorted) for COCO `images` entries."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise VbgError(
            f"split fractions must be 3 non-negative numbers summing to 1, not {fractions}"
        )
    groups: dict[str, list[int]] = {}
    source: dict[str, str] = {}
    seen: set[int] = set()
    for im in images:
        iid = int(im["id"])
        if iid in seen:
            raise VbgError(f"image id {iid} appears twice")
        seen.add(iid)
        k = group_key(im)
        groups.setdefault(k, []).append(iid)
    # A group's source is that of its lowest-id image (frames of one video share it anyway).
    for im in sorted(images, key=lambda im: int(im["id"])):
        source.setdefault(group_key(im), str(im.get("source") or ""))

    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]

    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for src in sorted(set(source.values())):
        line = [k for k in order if source[k] == src]
        n_total = sum(len(groups[k]) for k in line)
        bounds = (fractions[0] * n_total, (fractions[0] + fractions[1]) * n_total)
        start = 0
        for k in line:
            n = len(groups[k])
            mid = start + n / 2.0
            split = "train" if mid < bounds[0] else "val" if mid < bounds[1] else "test"
            out[split].extend(groups[k])
            start += n
    return {s: sorted(v) for s, v in out.items()}


def load_ann(ann: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(ann, dict):
        return ann
    path = Path(ann)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise VbgError(f"annotation file {path} does not exist") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VbgError(f"annotation file {path} is not valid JSON: {e}") from e


def write_split_coco(
    ann: dict[str, Any] | str | Path, ids: Iterable[int], out_json: str | Path
) -> Path:
    """Write the COCO subset holding `ids` (images and their annotations, every other key
    kept) to `out_json`, atomically, so `vbg eval --ann RUN/splits/test.json` reads it."""
    data = load_ann(ann)
    keep = {int(i) for i in ids}
    known = {int(im["id"]) for im in data.get("images", [])}
    missing = keep - known
    if missing:
        raise VbgError(f"{len(missing)} ids are not in the annotations, e.g. {sorted(missing)[:5]}")
    sub = {k: v for k, v in data.items() if k not in ("images", "annotations")}
    sub["images"] = [im for im in data["images"] if int(im["id"]) in keep]
    sub["annotations"] = [a for a in data.get("annotations", []) if int(a["image_id"]) in keep]
    sub.setdefault("categories", [])
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(sub))
    tmp.replace(out_json)
    return out_json
