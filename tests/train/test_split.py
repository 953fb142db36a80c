"""grouped_split and write_split_coco."""

from __future__ import annotations

import json
import random

import pytest

from tests.cocogen import make_coco
from train.split import SPLITS, grouped_split, write_split_coco
from vbg import VbgError


def _images(n: int, groups: dict[int, str] | None = None, sources: dict[int, str] | None = None):
    out = []
    for i in range(n):
        im = {"id": 10 + 3 * i, "file_name": f"{i}.jpg", "width": 10, "height": 10}
        if groups and i in groups:
            im["group"] = groups[i]
        if sources and i in sources:
            im["source"] = sources[i]
        out.append(im)
    return out


def _check_partition(images, split):
    ids = [im["id"] for im in images]
    got = split["train"] + split["val"] + split["test"]
    assert sorted(got) == sorted(ids)  # every image once
    for name in SPLITS:
        assert split[name] == sorted(split[name])


@pytest.mark.parametrize("n", [1, 7, 8, 24, 101, 1000, 2665])
@pytest.mark.parametrize("seed", [0, 5])
def test_ungrouped_proportions_within_one_image(n, seed):
    images = _images(n)
    split = grouped_split(images, seed=seed)
    _check_partition(images, split)
    for name, frac in zip(SPLITS, (0.75, 0.125, 0.125), strict=True):
        assert abs(len(split[name]) - frac * n) <= 1.0, (name, len(split[name]), frac * n)


def test_other_fractions():
    images = _images(200)
    split = grouped_split(images, fractions=(0.5, 0.3, 0.2))
    assert [len(split[s]) for s in SPLITS] == [100, 60, 40]
    with pytest.raises(VbgError):
        grouped_split(images, fractions=(0.5, 0.3, 0.3))
    with pytest.raises(VbgError):
        grouped_split(images, fractions=(1.2, -0.1, -0.1))


def test_no_group_crosses_sides():
    rnd = random.Random(1)
    groups = {}
    i = 0
    for g in range(30):  # videos of 1..25 frames, with single photos in between
        for _ in range(rnd.randint(1, 25)):
            groups[i] = f"video{g}"
            i += 1
        i += rnd.randint(0, 5)
    images = _images(i + 3, groups)
    for seed in range(5):
        split = grouped_split(images, seed=seed)
        _check_partition(images, split)
        side = {iid: name for name in SPLITS for iid in split[name]}
        by_group: dict[str, set[str]] = {}
        for im in images:
            if "group" in im:
                by_group.setdefault(im["group"], set()).add(side[im["id"]])
        assert all(len(s) == 1 for s in by_group.values())
        # Still roughly 75/12.5/12.5: off by at most half the largest group, plus rounding.
        for name, frac in zip(SPLITS, (0.75, 0.125, 0.125), strict=True):
            assert abs(len(split[name]) - frac * len(images)) <= 25 / 2 + 1


def test_seeded_stable_and_independent_of_order():
    groups = {i: f"g{i // 4}" for i in range(0, 60)}
    images = _images(150, groups, sources={i: ("a" if i % 3 else "b") for i in range(150)})
    a = grouped_split(images, seed=3)
    shuffled = images[:]
    random.Random(0).shuffle(shuffled)
    assert grouped_split(shuffled, seed=3) == a
    assert grouped_split(list(reversed(images)), seed=3) == a
    assert grouped_split(images, seed=4) != a


def test_each_source_is_split_in_proportion():
    sources = {i: "portrait" if i < 600 else "street" if i < 900 else "video" for i in range(1000)}
    groups = {i: f"clip{(i - 900) // 20}" for i in range(900, 1000)}  # 5 clips of 20 frames
    images = _images(1000, groups, sources)
    split = grouped_split(images, seed=0)
    src = {im["id"]: im["source"] for im in images}
    for name, frac in zip(SPLITS, (0.75, 0.125, 0.125), strict=True):
        n_portrait = sum(src[i] == "portrait" for i in split[name])
        n_street = sum(src[i] == "street" for i in split[name])
        assert abs(n_portrait - frac * 600) <= 1
        assert abs(n_street - frac * 300) <= 1
    # The clips are spread out: not all in training.
    assert any(src[i] == "video" for i in split["test"] + split["val"])


def test_duplicate_ids_are_an_error():
    images = _images(5)
    images.append(dict(images[0]))
    with pytest.raises(VbgError, match="twice"):
        grouped_split(images)


def test_generated_set_keeps_clips_together(tmp_path):
    ann, _ = make_coco(tmp_path, n_images=30, n_groups=3, frames_per_group=4)
    data = json.loads(ann.read_text())
    split = grouped_split(data["images"], seed=0)
    _check_partition(data["images"], split)
    side = {iid: name for name in SPLITS for iid in split[name]}
    for g in ("clip0", "clip1", "clip2"):
        assert len({side[im["id"]] for im in data["images"] if im.get("group") == g}) == 1


def test_write_split_coco_round_trip(tmp_path):
    pytest.importorskip("pycocotools")
    from train.data import load_coco

    ann, _ = make_coco(tmp_path / "set", n_images=16)
    data = json.loads(ann.read_text())
    split = grouped_split(data["images"], seed=0)
    written = {}
    for name in SPLITS:
        out = write_split_coco(ann, split[name], tmp_path / "splits" / f"{name}.json")
        written[name] = json.loads(out.read_text())
        sub = written[name]
        ids = {im["id"] for im in sub["images"]}
        assert ids == set(split[name])
        assert {a["image_id"] for a in sub["annotations"]} <= ids
        want = [a for a in data["annotations"] if a["image_id"] in ids]
        assert sub["annotations"] == want  # entries unchanged, in their original order
        assert sub["categories"] == data["categories"] and sub["info"] == data["info"]
        assert load_coco(out).getImgIds()  # pycocotools reads it
        assert not list((tmp_path / "splits").glob("*.tmp"))
    # Together the three files hold the whole set, each image and annotation once.
    assert sorted(im["id"] for s in written.values() for im in s["images"]) == sorted(
        im["id"] for im in data["images"]
    )
    assert sorted(a["id"] for s in written.values() for a in s["annotations"]) == sorted(
        a["id"] for a in data["annotations"]
    )
    # A dict works as well as a path; unknown ids are an error.
    out = write_split_coco(data, split["val"], tmp_path / "val2.json")
    assert json.loads(out.read_text()) == written["val"]
    with pytest.raises(VbgError, match="not in the annotations"):
        write_split_coco(data, [987654], tmp_path / "x.json")
