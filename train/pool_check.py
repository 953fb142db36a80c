"""`train check --mix MIX`: the combined training pool that `train fit` would draw from.

The pool is the training side of the main set's grouped split plus the mix's pools; the
evaluation set is the main set's validation and test sides. The report gives counts per
source and per kind, persons per image, person-area histogram and image sizes (the plots
of train/eda.py), and two hash checks with a 64-bit difference hash (dHash) of every image:

- duplicates across sources inside the pool (distance <= `DUP_BITS`): the second of each
  pair is listed in OUT/duplicates.txt, which a mix file's `exclude:` drops from training;
- pool images that also appear in the evaluation set (a leak): listed, and a failure.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from train import eda

DUP_BITS = 6  # of 64: re-encoded or resized copies stay within a few bits
THUMB_DIFF = 20.0  # mean |difference| of 16x16 colour thumbnails (0-255) confirming a match;
# the corpus's own near-duplicate shots (same person, same place, moved a little) lie at 11-18


def fingerprint(path: Path) -> tuple[int, np.ndarray]:
    """(64-bit difference hash, 16x16 colour thumbnail) of an image file.

    dHash: grey 9x8 thumbnail, one bit per horizontal gradient sign. On low-detail images
    (a plain wall, a sky) unrelated photos can share a hash, so a hash match is confirmed
    with the thumbnails (see `same_image`)."""
    img = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_4)
    if img is None:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return 0, np.zeros((16, 16, 3), np.uint8)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    thumb = cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA)
    return int(np.packbits(bits).view(">u8")[0]), thumb


def dhash(path: Path) -> int:
    return fingerprint(path)[0]


def same_image(a: np.ndarray, b: np.ndarray, max_diff: float = THUMB_DIFF) -> bool:
    """Thumbnails close in colour everywhere: a copy, re-encoded, resized or re-lit a little."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) <= max_diff


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise bit distances of two uint64 arrays (len(a) x len(b))."""
    x = np.bitwise_xor(a[:, None], b[None, :])
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def near_pairs(a: np.ndarray, b: np.ndarray, bits: int, chunk: int = 512) -> list[tuple[int, int]]:
    """(i, j) with hamming(a[i], b[j]) <= bits, in chunks so memory stays small."""
    out = []
    for s in range(0, len(a), chunk):
        d = hamming(a[s : s + chunk], b)
        ii, jj = np.nonzero(d <= bits)
        out += [(int(i) + s, int(j)) for i, j in zip(ii, jj, strict=True)]
    return out


def pool_entries(ann: str, images: str, mix_path: str, seed: int = 0) -> tuple[list, list]:
    """([(set_index, coco, root, id)] of the pool, the same of the evaluation set)."""
    from train.data import load_coco
    from train.sampler import load_mix, pool_ids
    from train.split import grouped_split

    main = load_coco(ann)
    split = grouped_split(list(main.dataset["images"]), seed=seed)
    pool = [(0, main, Path(images), i) for i in split["train"]]
    evalset = [(0, main, Path(images), i) for i in split["val"] + split["test"]]
    for k, p in enumerate(load_mix(mix_path).pools, start=1):
        coco = load_coco(p.ann)
        pool += [(k, coco, Path(p.images), i) for i in pool_ids(coco)]
    return pool, evalset


def check_pool(ann: str, images: str, mix_path: str, out_dir: Path, rows_by_set: list) -> dict:
    """Writes OUT/pool.md, OUT/pool.json, OUT/duplicates.txt and plots; returns the summary.
    `rows_by_set[k]` are train/check.py's rows of set k (main first, then the pools)."""
    from train.kinds import kinds_of

    pool, evalset = pool_entries(ann, images, mix_path)
    sets = {e[0]: e[1] for e in pool + evalset}
    kinds = {(k, i): kind for k, coco in sets.items() for i, kind in kinds_of(coco.dataset).items()}
    rows_index = {(k, r["id"]): r for k, rows in enumerate(rows_by_set) for r in rows}
    rows = []
    for k, _, _, i in pool:
        r = rows_index.get((k, i))
        if r is not None:
            rows.append(dict(r, kind=kinds.get((k, i), "portrait")))

    def name(e: Any) -> str:
        return f"{e[1].imgs[e[3]].get('source')}:{e[1].imgs[e[3]]['file_name']}"

    fp = [fingerprint(e[2] / e[1].imgs[e[3]]["file_name"]) for e in pool]
    fe = [fingerprint(e[2] / e[1].imgs[e[3]]["file_name"]) for e in evalset]
    hp = np.array([h for h, _ in fp], np.uint64)
    he = np.array([h for h, _ in fe], np.uint64)
    src = [str(e[1].imgs[e[3]].get("source")) for e in pool]
    dups = sorted(
        (i, j)
        for i, j in near_pairs(hp, hp, DUP_BITS)
        if i < j and src[i] != src[j] and same_image(fp[i][1], fp[j][1])
    )
    candidates = near_pairs(hp, he, DUP_BITS) if len(he) else []
    leaks = [(i, j) for i, j in candidates if same_image(fp[i][1], fe[j][1])]
    removed = sorted({name(pool[j]) for _, j in dups})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "duplicates.txt").write_text("".join(f"{n}\n" for n in removed))

    plots = eda.plot_all(rows, out_dir)
    by_kind = eda.summarize([dict(r, source=r["kind"]) for r in rows])
    summary = {
        "pool_images": len(pool),
        "pool_after_dedup": len(pool) - len(removed),
        "eval_images": len(evalset),
        "per_source": {s: v["images"] for s, v in eda.summarize(rows).items()},
        "per_kind": Counter(r["kind"] for r in rows),
        "per_source_kind": Counter(f"{r['source']}/{r['kind']}" for r in rows),
        "cross_source_duplicates": [[name(pool[i]), name(pool[j])] for i, j in dups],
        "removed": removed,
        "eval_leaks": [[name(pool[i]), name(evalset[j])] for i, j in leaks],
    }
    (out_dir / "pool.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Training pool",
        "",
        f"- main set `{ann}` (training side of the grouped split, seed 0) + mix `{mix_path}`",
        f"- pool: **{len(pool):,} images**, {len(removed):,} cross-source duplicates removed "
        f"-> **{summary['pool_after_dedup']:,}**; evaluation set (val + test): {len(evalset):,}",
        f"- pool images also in the evaluation set (dHash <= {DUP_BITS} bits): "
        f"**{len(leaks)}**" + (" (listed in pool.json)" if leaks else ""),
        "",
        "## Per source",
        "",
        eda.markdown_summary(eda.summarize(rows)),
        "## Per kind",
        "",
        eda.markdown_summary(by_kind),
        "## Source x kind",
        "",
        "| source/kind | images |",
        "|---|---|",
        *[f"| {k} | {v:,} |" for k, v in sorted(summary["per_source_kind"].items())],
        "",
        "## Duplicates across sources",
        "",
        *([f"- {a} = {b}" for a, b in summary["cross_source_duplicates"][:50]] or ["None."]),
        "",
        *[f"![{p.stem.replace('_', ' ')}]({p.name})\n" for p in plots],
    ]
    (out_dir / "pool.md").write_text("\n".join(lines) + "\n")
    return summary
