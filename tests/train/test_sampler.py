"""The mixing sampler: weights per source and kind, mix-file checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from train.kinds import image_kind
from train.sampler import MixConfig, MixSampler, load_mix, sample_weights
from vbg import VbgError


def test_cells_balance_gives_a_small_source_its_weighted_share():
    cells = [("big", "portrait")] * 900 + [("small", "multi")] * 100
    w = sample_weights(cells, MixConfig(source_weights={"small": 3.0}))
    gen = torch.Generator().manual_seed(0)
    drawn = Counter(cells[i] for i in MixSampler(w, 20000, gen))
    # small: 3 / (3 + 1) of the draws, though it holds a tenth of the images
    assert drawn[("small", "multi")] / 20000 == pytest.approx(0.75, abs=0.02)


def test_images_balance_is_uniform_without_weights_and_kind_weights_scale():
    cells = [("a", "portrait")] * 30 + [("a", "video")] * 10
    w = sample_weights(cells, MixConfig(balance="images"))
    assert np.allclose(w, 1 / 40)
    w = sample_weights(cells, MixConfig(balance="images", kind_weights={"video": 3.0}))
    assert w[:30].sum() == pytest.approx(0.5)


def test_sampler_repeats_with_the_same_seed():
    w = np.full(10, 0.1)
    a = list(MixSampler(w, 50, torch.Generator().manual_seed(3)))
    b = list(MixSampler(w, 50, torch.Generator().manual_seed(3)))
    assert a == b and len(a) == 50


def test_mix_file_errors(tmp_path):
    p = tmp_path / "mix.yaml"
    p.write_text("pools: [{ann: a.json}]\n")
    with pytest.raises(VbgError, match="needs ann and images"):
        load_mix(p)
    p.write_text("source_weight: {a: 1}\n")
    with pytest.raises(VbgError, match="unknown key"):
        load_mix(p)
    p.write_text("kind_weights: {video: -1}\n")
    with pytest.raises(VbgError, match="negative"):
        load_mix(p)
    with pytest.raises(VbgError, match="nothing to draw"):
        sample_weights([("a", "video")], MixConfig(kind_weights={"video": 0}))


def test_kinds_are_inferred_from_annotations():
    img = {"id": 1, "height": 100, "width": 80}
    one = [{"category_id": 1, "bbox": [0, 10, 50, 90]}]
    assert image_kind(img, one, Counter()) == "portrait"  # cut off by the bottom
    assert image_kind(img, [{"category_id": 1, "bbox": [0, 10, 50, 60]}], Counter()) == "fullbody"
    assert image_kind(img, one * 2, Counter()) == "multi"
    assert image_kind(dict(img, group="v/1"), one, Counter({"v/1": 5})) == "video"
    assert image_kind(dict(img, kind="multi"), [], Counter()) == "multi"
    assert image_kind(img, [], Counter()) == "empty"


def test_val_subset_keeps_evenly_spaced_ids():
    from train.fit import val_subset

    ids = list(range(100))
    assert val_subset(ids, 0) == ids and val_subset(ids, 200) == ids
    sub = val_subset(ids, 30)
    assert len(sub) <= 30 and sub[0] == 0 and sub[-1] >= 90


def test_fit_trains_on_a_mix_with_a_pool(tmp_path, capsys):
    """The mix hook end to end: the pool's images are drawn, the split stays the main set's."""
    import json

    from tests.train.fitutil import tiny_config, tiny_data
    from train.fit import fit

    ann, images = tiny_data(tmp_path / "main")
    pool_ann, pool_images = tiny_data(tmp_path / "pool")
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        f"pools:\n  - {{ann: {pool_ann}, images: {pool_images}}}\n"
        "source_weights: {still: 2.0}\nepoch_size: 8\n"
    )
    fit(tiny_config(ann, images, tmp_path / "run", mix=str(mix)))
    out = capsys.readouterr().out
    assert "mix: " in out and "in 2 sets, 8 samples per epoch" in out
    split = json.loads((tmp_path / "run" / "splits" / "ids.json").read_text())
    main_ids = {im["id"] for im in json.loads(ann.read_text())["images"]}
    assert set(split["test"]) <= main_ids
