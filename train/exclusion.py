"""Benchmark validation and test images that no training pool may hold, by name.

- COCO val2017: any file under a `val2017` folder, or named like a val2017 file
  (`val2017/000000xxxxxx.jpg`; a file name alone cannot say, so `--coco-val` ids can be added
  with `add_coco_val_ids`).
- DAVIS 2016 validation: the 20 sequences of ImageSets/480p/val.txt.
- Shen et al. 2016 portrait set: the 300 images of its test list (`testlist.mat`/`.txt`);
  their names are given by `add_names("portrait", ...)` from the publisher's list, since the
  converter of a source reads them from the download.

`excluded_reason(source, name, group)` is what every converter and `train fit`'s pool
loading ask; a non-empty answer says why the image is out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

DAVIS2016_VAL = frozenset(
    [
        "blackswan",
        "bmx-trees",
        "breakdance",
        "camel",
        "car-roundabout",
        "car-shadow",
        "cows",
        "dance-twirl",
        "dog",
        "drift-chicane",
        "drift-straight",
        "goat",
        "horsejump-high",
        "kite-surf",
        "libby",
        "motocross-jump",
        "paragliding-launch",
        "parkour",
        "scooter-black",
        "soapbox",
    ]
)
# Benchmark splits shipped inside public person sets (their validation/test folders).
HELD_OUT_DIRS = frozenset(
    {"val2017", "test2017", "validation", "testing", "test", "val", "p3m-500-p", "p3m-500-np"}
)
_COCO_ID = re.compile(r"(?:^|/)0*(\d{1,12})\.(?:jpg|jpeg|png)$", re.IGNORECASE)

_names: dict[str, set[str]] = {}  # source -> excluded file stems (e.g. the Shen test list)
_coco_val_ids: set[int] = set()


def add_names(source: str, names: Iterable[str]) -> None:
    """Excludes these file names (stems compared, any folder) of `source`."""
    _names.setdefault(source, set()).update(PurePosixPath(n).stem for n in names)


def add_coco_val_ids(ids: Iterable[int]) -> None:
    """Excludes COCO images with these ids (from instances_val2017.json) in any source."""
    _coco_val_ids.update(int(i) for i in ids)


def excluded_reason(source: str, name: str, group: str | None = None) -> str:
    """Why `name` (a path under the source) must stay out of training, or ''."""
    path = PurePosixPath(str(name).replace("\\", "/"))
    parts = [p.lower() for p in path.parts[:-1]]
    held = HELD_OUT_DIRS.intersection(parts)
    if held:
        return f"in a benchmark folder ({sorted(held)[0]})"
    seqs = {p for p in parts} | {str(group or "").split("/")[-1].lower()}
    if source.startswith("davis") or "davis" in str(group or ""):
        hit = DAVIS2016_VAL.intersection(seqs)
        if hit:
            return f"DAVIS 2016 validation sequence {sorted(hit)[0]}"
        stem_seq = path.stem.rsplit("_", 1)[0]  # the corpus's davis/<sequence>_NNNNN.jpg
        if stem_seq in DAVIS2016_VAL:
            return f"DAVIS 2016 validation sequence {stem_seq}"
    if path.stem in _names.get(source, set()):
        return f"on the {source} test list"
    m = _COCO_ID.search(str(path))
    if _coco_val_ids and m and source.startswith("coco") and int(m.group(1)) in _coco_val_ids:
        return "COCO val2017 image"
    return ""
