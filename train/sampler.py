"""Mixing several person sets in training, with weights per source and per kind.

`train fit` splits its main set (`--ann`) into train/val/test as always; a mix file
(`mix: configs/mix_grown.yaml`) adds training-only pools (converted public sets,
composites, synthetic clips) and says how often each source and kind is drawn:

```yaml
pools:                      # COCO person sets used for training only
  - {ann: data/composites/composites.json, images: data/composites}
source_weights: {portrait: 1.0, ccp: 1.0, composite: 2.0}   # unlisted sources: 1.0
kind_weights: {video: 0.5}                                   # unlisted kinds: 1.0
balance: cells              # or: images
epoch_size: 0               # samples per epoch; 0 = the main set's training split size
exclude: runs/check/duplicates.txt   # optional: "source:file_name" lines to leave out
```

- `balance: cells` (default): each (source, kind) cell present gets a share of every batch
  proportional to `source_weights[source] * kind_weights[kind]`, spread evenly over its
  images; so a small but important source is drawn as often as its weight says, however
  many images the others have.
- `balance: images`: each image is drawn with weight `source_weights * kind_weights`, so
  with no weights every image is equally likely (plain shuffling, with replacement).

Samples are drawn with replacement, from a generator `train fit` re-seeds every epoch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError

BALANCE = ("cells", "images")


@dataclass
class Pool:
    ann: str
    images: str


@dataclass
class MixConfig:
    pools: list[Pool] = field(default_factory=list)
    source_weights: dict[str, float] = field(default_factory=dict)
    kind_weights: dict[str, float] = field(default_factory=dict)
    epoch_size: int = 0
    balance: str = "cells"
    exclude: frozenset[str] = frozenset()  # "source:file_name" of pool images left out


def load_mix(path: str | Path) -> MixConfig:
    """A mix file, checked (unknown keys and negative weights are errors). Pool paths are
    relative to where `train fit` runs, like the config's own paths."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise VbgError(f"mix file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(
        set(data) - {"pools", "source_weights", "kind_weights", "epoch_size", "balance", "exclude"}
    )
    if unknown:
        raise VbgError(f"mix file {path}: unknown key(s) {', '.join(unknown)}")
    pools = []
    for p in data.get("pools") or []:
        if not isinstance(p, dict) or not p.get("ann") or not p.get("images"):
            raise VbgError(f"mix file {path}: each pool needs ann and images, not {p!r}")
        pools.append(Pool(str(p["ann"]), str(p["images"])))
    weights = {}
    for key in ("source_weights", "kind_weights"):
        w = {str(k): float(v) for k, v in (data.get(key) or {}).items()}
        if any(v < 0 for v in w.values()):
            raise VbgError(f"mix file {path}: {key} must not be negative")
        weights[key] = w
    epoch_size = int(data.get("epoch_size") or 0)
    if epoch_size < 0:
        raise VbgError(f"mix file {path}: epoch_size must not be negative")
    balance = str(data.get("balance") or "cells")
    if balance not in BALANCE:
        raise VbgError(f"mix file {path}: balance must be one of {', '.join(BALANCE)}")
    return MixConfig(pools, weights["source_weights"], weights["kind_weights"], epoch_size, balance)


def sample_weights(cells: Sequence[tuple[str, str]], mix: MixConfig) -> np.ndarray:
    """Probability of each sample, from its (source, kind), summing to 1."""
    counts = Counter(cells) if mix.balance == "cells" else Counter()
    w = np.array(
        [
            mix.source_weights.get(s, 1.0) * mix.kind_weights.get(k, 1.0) / counts.get((s, k), 1)
            for s, k in cells
        ],
        np.float64,
    )
    if w.sum() <= 0:
        raise VbgError("the mix weights leave nothing to draw (every source or kind weighs 0)")
    return w / w.sum()


class MixSampler:
    """`num_samples` indices per epoch, drawn with replacement by `weights` (a torch sampler)."""

    def __init__(self, weights: np.ndarray, num_samples: int, generator: Any) -> None:
        import torch

        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.num_samples = int(num_samples)
        self.generator = generator

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        import torch

        idx = torch.multinomial(self.weights, self.num_samples, True, generator=self.generator)
        return iter(idx.tolist())


class MixedDataset:
    """Several CocoPersonDatasets end to end, sharing one transform (a torch dataset)."""

    def __init__(self, parts: list[Any], transform: Any) -> None:
        self.parts = parts
        self.transform = transform  # fit seeds the data RNGs through this
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, idx: int) -> tuple[Any, int]:
        k = int(np.searchsorted(self.offsets, idx, side="right") - 1)
        return self.parts[k], idx - int(self.offsets[k])

    def __getitem__(self, idx: int) -> dict[str, Any]:
        part, j = self.locate(idx)
        return part[j]


def cells_of(ds: Any) -> list[tuple[str, str]]:
    """(source, kind) of each image of a CocoPersonDataset."""
    from train.kinds import kinds_of

    kinds = kinds_of(ds.coco.dataset)
    return [
        (str(ds.coco.imgs[i].get("source") or "unknown"), kinds.get(i, "portrait")) for i in ds.ids
    ]


def pool_ids(coco: Any, exclude: frozenset[str] = frozenset()) -> list[int]:
    """The pool's images minus any benchmark image (train/exclusion.py), by name, and
    minus the `exclude` list ("source:file_name", e.g. duplicates found by train check)."""
    from train.exclusion import excluded_reason

    out = []
    for i, im in sorted(coco.imgs.items()):
        source = str(im.get("source") or "")
        if excluded_reason(source, im["file_name"], im.get("group")):
            continue
        if f"{source}:{im['file_name']}" not in exclude:
            out.append(i)
    return out


def build_mixed_train_set(
    mix_path: str,
    base: Any,
    make_dataset: Callable[[Any, str, list[int]], Any],
    generator: Any,
    say: Callable[..., None] = print,
) -> tuple[MixedDataset, MixSampler]:
    """The training dataset and sampler of a mix: `base` (the main set's training split,
    a CocoPersonDataset) plus the mix's pools, made with `make_dataset(coco, root, ids)`."""
    from train.data import load_coco

    mix = load_mix(mix_path)
    parts = [base]
    for pool in mix.pools:
        coco = load_coco(pool.ann)
        parts.append(make_dataset(coco, pool.images, pool_ids(coco, mix.exclude)))
    cells = [c for p in parts for c in cells_of(p)]
    weights = sample_weights(cells, mix)
    n = mix.epoch_size or len(base)
    share: Counter = Counter()
    for c, w in zip(cells, weights, strict=True):
        share[c] += w
    say(
        f"mix: {len(cells)} training images in {len(parts)} sets, {n} samples per epoch; "
        + ", ".join(f"{s}/{k} {share[(s, k)]:.0%}" for s, k in sorted(share))
    )
    return MixedDataset(parts, base.transform), MixSampler(weights, n, generator)
