"""CocoPersonDataset against the generator's own ground truth (tests/cocogen.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools")
torch = pytest.importorskip("torch")
# pycocotools under numpy 2 warns on every decode; nothing this project can act on.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"
)

from tests.cocogen import DOG, expected_mask, expected_masks, make_coco  # noqa: E402
from train.data import CocoPersonDataset, load_coco, person_mask, select_ids  # noqa: E402
from vbg import VbgError  # noqa: E402


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory) -> tuple[Path, Path]:
    return make_coco(tmp_path_factory.mktemp("coco"), n_images=14)


@pytest.fixture(scope="module")
def ann_data(coco_set) -> dict:
    return json.loads(coco_set[0].read_text())


def _empty_ids(ann_data: dict) -> set[int]:
    with_person = {a["image_id"] for a in ann_data["annotations"] if a["category_id"] == 1}
    return {im["id"] for im in ann_data["images"]} - with_person


def test_the_generated_set_covers_every_encoding(ann_data):
    person = [a for a in ann_data["annotations"] if a["category_id"] == 1]
    kinds = {
        "polygon"
        if isinstance(a["segmentation"], list)
        else "rle"
        if isinstance(a["segmentation"]["counts"], str)
        else "uncompressed"
        for a in person
    }
    assert kinds == {"polygon", "rle", "uncompressed"}
    assert any(a["iscrowd"] for a in person)
    assert any(a["category_id"] == DOG for a in ann_data["annotations"])
    assert len(_empty_ids(ann_data)) == 2


def test_targets_equal_the_drawn_masks(coco_set):
    ann, root = coco_set
    ds = CocoPersonDataset(ann, root)
    assert len(ds) == 14
    assert ds.ids == sorted(ds.ids)
    for i in range(len(ds)):
        truth = expected_mask(ann, ds.ids[i])
        got = ds.original_mask(i)
        assert got.dtype == np.uint8 and got.shape == truth.shape
        np.testing.assert_array_equal(got, truth, err_msg=f"image {ds.ids[i]}")


def test_person_mask_separates_people_and_crowd(coco_set):
    ann, _ = coco_set
    coco = load_coco(ann)
    for iid in coco.imgs:
        person, crowd = person_mask(coco, iid)
        want_p, want_c = expected_masks(ann, iid)
        np.testing.assert_array_equal(person, want_p)
        np.testing.assert_array_equal(crowd, want_c)


def test_crowd_counts_as_person_or_is_ignored(coco_set, ann_data):
    ann, root = coco_set
    crowd_img = next(a["image_id"] for a in ann_data["annotations"] if a["iscrowd"])
    person, crowd = expected_masks(ann, crowd_img)
    assert crowd.any()

    ds = CocoPersonDataset(ann, root, [crowd_img], crowd="person")
    item = ds[0]
    np.testing.assert_array_equal(item["mask"][0].numpy(), (person | crowd).astype(np.float32))
    assert not item["ignore"].any()

    ds = CocoPersonDataset(ann, root, [crowd_img], crowd="ignore")
    item = ds[0]
    np.testing.assert_array_equal(item["mask"][0].numpy(), person.astype(np.float32))
    np.testing.assert_array_equal(
        item["ignore"][0].numpy(), (crowd & (1 - person)).astype(np.float32)
    )
    np.testing.assert_array_equal(ds.original_mask(0), person)

    with pytest.raises(VbgError, match="crowd"):
        CocoPersonDataset(ann, root, crowd="maybe")


def test_item_without_transform(coco_set):
    ann, root = coco_set
    ds = CocoPersonDataset(ann, root)
    item = ds[3]
    info = ds.image_info(3)
    h, w = info["height"], info["width"]
    assert item["id"] == ds.ids[3] == info["id"]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, h, w)
    assert item["mask"].shape == item["ignore"].shape == (1, h, w)
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
    assert set(np.unique(item["mask"].numpy())) <= {0.0, 1.0}


def test_other_categories_are_not_person(coco_set, ann_data):
    ann, root = coco_set
    dog_img = next(a["image_id"] for a in ann_data["annotations"] if a["category_id"] == DOG)
    ds = CocoPersonDataset(ann, root, [dog_img])
    assert not ds.original_mask(0).any()
    assert ds.instances(0) == []


def test_image_info_carries_source_and_group(coco_set):
    ann, root = coco_set
    ds = CocoPersonDataset(ann, root)
    infos = [ds.image_info(i) for i in range(len(ds))]
    video = [i for i in infos if i["source"] == "video"]
    assert len(video) == 6 and {i["group"] for i in video} == {"clip0", "clip1"}
    assert all(i["group"] is None for i in infos if i["source"] == "still")
    assert all(i["path"].is_file() for i in infos)
    frames = sorted((i["group"], i["file_name"]) for i in video)
    assert [f for _, f in frames][:3] == [f"video/clip0_{k:05d}.jpg" for k in range(3)]


def test_empty_fraction_keeps_a_seeded_share(tmp_path):
    ann, root = make_coco(tmp_path, n_images=20, n_groups=1, frames_per_group=2)
    data = json.loads(ann.read_text())
    # Make 8 images empty: drop their annotations.
    ids = sorted(im["id"] for im in data["images"])
    drop = set(ids[:8])
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in drop]
    ann.write_text(json.dumps(data))
    coco = load_coco(ann)
    empty = _empty_ids(data)
    n_empty = len(empty)
    assert n_empty >= 8

    def kept_empty(frac: float, seed: int = 0, order=None) -> set[int]:
        sel = select_ids(coco, order, empty_fraction=frac, seed=seed)
        return set(sel) & empty

    assert kept_empty(0.0) == set()
    assert kept_empty(1.0) == empty
    half = kept_empty(0.5)
    assert len(half) == round(0.5 * n_empty)
    assert kept_empty(0.5) == half  # seeded
    assert kept_empty(0.5, order=sorted(coco.imgs, reverse=True)) == half  # order-independent
    assert any(kept_empty(0.5, seed=s) != half for s in range(1, 6))
    # Images with people are all kept whatever the fraction.
    assert set(select_ids(coco, None, empty_fraction=0.0)) == set(coco.imgs) - empty
    ds = CocoPersonDataset(ann, root, empty_fraction=0.0)
    assert all(ds.original_mask(i).any() for i in range(len(ds)))
    with pytest.raises(VbgError):
        select_ids(coco, None, empty_fraction=1.5)


def test_max_images_caps_with_a_seed(coco_set):
    ann, root = coco_set
    coco = load_coco(ann)
    a = select_ids(coco, None, max_images=5, seed=1)
    assert len(a) == 5 and a == sorted(a)
    assert select_ids(coco, None, max_images=5, seed=1) == a
    assert select_ids(coco, sorted(coco.imgs, reverse=True), max_images=5, seed=1) == sorted(
        a, reverse=True
    )
    assert any(select_ids(coco, None, max_images=5, seed=s) != a for s in range(2, 8))
    assert len(select_ids(coco, None, max_images=100)) == len(coco.imgs)
    ds = CocoPersonDataset(ann, root, max_images=4, seed=3)
    assert len(ds) == 4
    # Empty images go first, then the cap: none of the 4 is empty.
    ds = CocoPersonDataset(ann, root, max_images=4, empty_fraction=0.0)
    assert all(ds.original_mask(i).any() for i in range(4))


def test_given_ids_keep_their_order_and_unknown_ids_fail(coco_set):
    ann, root = coco_set
    coco = load_coco(ann)
    ids = sorted(coco.imgs)[::-1][:5]
    ds = CocoPersonDataset(coco, root, ids)  # a loaded COCO index is accepted too
    assert ds.ids == ids
    with pytest.raises(VbgError, match="not in the annotations"):
        CocoPersonDataset(coco, root, [123456789])


def test_size_disagreeing_with_json_is_an_error(tmp_path):
    ann, root = make_coco(tmp_path, n_images=8, n_groups=1, frames_per_group=2)
    data = json.loads(ann.read_text())
    data["images"][0]["width"] += 2
    iid = data["images"][0]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != iid]
    ann.write_text(json.dumps(data))
    ds = CocoPersonDataset(ann, root, [iid])
    with pytest.raises(VbgError, match="train check"):
        ds[0]


def test_eval_transform_item_sizes(coco_set):
    from train.transforms import get_transform
    from vbg.card import InputSpec

    ann, root = coco_set
    spec = InputSpec(height=64, width=96)
    ds = CocoPersonDataset(ann, root, transform=get_transform(False, spec))
    for i in range(len(ds)):
        info = ds.image_info(i)
        item = ds[i]
        h, w = spec.size_for(info["height"], info["width"])
        assert item["image"].shape == (3, h, w)
        assert item["mask"].shape == item["ignore"].shape == (1, h, w)
        assert h % 32 == 0 and w % 32 == 0
