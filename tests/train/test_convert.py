"""Converters on small samples laid out as each publisher ships them, and the benchmark
exclusion: a validation/test name never reaches a converted set, a pool or a split."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from train import convert, exclusion
from train.data import load_coco, person_mask
from train.sampler import pool_ids
from train.split import grouped_split
from vbg import VbgError

H, W = 24, 32


def _photo(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)


def _box(y0=4, y1=20, x0=8, x1=20) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def _run(fmt: str, root: Path, out: Path) -> dict:
    counts = convert.convert(convert.FORMATS[fmt](root), fmt, out)
    return counts


def _masks(out: Path) -> dict[str, np.ndarray]:
    coco = load_coco(out / "annotations.json")
    return {im["file_name"]: person_mask(coco, i)[0] for i, im in coco.imgs.items()}


def test_aisegment_layout_reads_the_alpha_channel(tmp_path):
    root = tmp_path / "matting_human_half"
    _photo(root / "clip_img/1803151818/clip_00000000/1803151818-00000003.jpg")
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 200  # colour everywhere: only the alpha says where the person is
    rgba[..., 3] = _box() * 255
    _png(root / "matting/1803151818/matting_00000000/1803151818-00000003.png", rgba)
    out = tmp_path / "out"
    assert _run("aisegment", root, out)["kept"] == 1
    ((name, m),) = _masks(out).items()
    assert name == "images/aisegment/1803151818/clip_00000000/1803151818-00000003.jpg"
    assert (out / name).is_file() and np.array_equal(m, _box())
    info = json.loads((out / "annotations.json").read_text())["images"][0]
    assert info["source"] == "aisegment" and info["kind"] == "portrait"


def test_p3m_layout_keeps_train_and_leaves_out_validation(tmp_path):
    root = tmp_path / "P3M-10k"
    _photo(root / "train/blurred_image/p_0001.jpg")
    _png(root / "train/mask/p_0001.png", _box() * 255)
    _photo(root / "validation/P3M-500-P/blurred_image/p_val.jpg")
    _png(root / "validation/P3M-500-P/mask/p_val.png", _box() * 255)
    out = tmp_path / "out"
    assert _run("p3m", root, out)["kept"] == 1
    assert list(_masks(out)) == ["images/p3m/p_0001.jpg"]


def test_cihp_layout_gives_one_annotation_per_person(tmp_path):
    root = tmp_path / "instance-level_human_parsing"
    _photo(root / "Training/Images/0000006.jpg")
    ids = np.zeros((H, W), np.uint8)
    ids[2:20, 2:10] = 1
    ids[4:22, 18:30] = 2
    from PIL import Image

    (root / "Training/Human_ids").mkdir(parents=True)
    # CIHP ships palette PNGs whose indices are the person ids.
    Image.fromarray(ids).convert("P").save(root / "Training/Human_ids/0000006.png")
    _photo(root / "Validation/Images/0000001.jpg")
    out = tmp_path / "out"
    counts = convert.convert(convert.cihp_items(tmp_path), "cihp", out)
    assert counts == {"kept": 1, "excluded": 0, "no_person": 0, "annotations": 2}
    assert _masks(out)["images/cihp/0000006.jpg"].sum() == (ids > 0).sum()


def _bitmap(mask: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    return base64.b64encode(zlib.compress(png.tobytes())).decode()


def test_supervisely_layout_polygons_bitmaps_and_tags(tmp_path):
    root = tmp_path / "Supervisely Person Dataset"
    ds = root / "ds1"
    _photo(ds / "img/pexels-photo-1.png")
    _photo(ds / "img/pexels-photo-2.png", 1)
    ann = {
        "size": {"height": H, "width": W},
        "tags": [],
        "objects": [
            {
                "classTitle": "person_poly",
                "geometryType": "polygon",
                "points": {"exterior": [[2, 2], [10, 2], [10, 20], [2, 20]], "interior": []},
            },
            {
                "classTitle": "person_bmp",
                "geometryType": "bitmap",
                "bitmap": {"data": _bitmap(np.ones((6, 5))), "origin": [20, 10]},
            },
            {
                "classTitle": "neutral",
                "geometryType": "polygon",
                "points": {"exterior": [[25, 0], [31, 0], [31, 5]], "interior": []},
            },
        ],
    }
    (ds / "ann").mkdir()
    (ds / "ann/pexels-photo-1.png.json").write_text(json.dumps(ann))
    unmarked = dict(ann, tags=[{"name": "not-marked-people"}])
    (ds / "ann/pexels-photo-2.png.json").write_text(json.dumps(unmarked))
    out = tmp_path / "out"
    counts = _run("supervisely", root, out)
    assert counts["kept"] == 1 and counts["annotations"] == 2
    m = _masks(out)["images/supervisely/ds1/pexels-photo-1.png"]
    assert m[10:16, 20:25].all() and m[2:21, 2:11].all() and m.sum() == 9 * 19 + 30


def test_davis_layout_groups_clips_and_excludes_validation_sequences(tmp_path):
    root = tmp_path / "DAVIS"
    for seq in ("hike", "blackswan", "libby"):
        for t in range(2):
            _photo(root / f"JPEGImages/480p/{seq}/{t:05d}.jpg", t)
            _png(root / f"Annotations/480p/{seq}/{t:05d}.png", _box() * 255)
    out = tmp_path / "out"
    counts = _run("davis", root, out)
    assert counts["kept"] == 2 and counts["excluded"] == 4
    d = json.loads((out / "annotations.json").read_text())
    assert {im["group"] for im in d["images"]} == {"davis/hike"}
    split = grouped_split(d["images"], seed=0)
    names = {d["images"][i - 1]["file_name"] for s in split.values() for i in s}
    assert not any("blackswan" in n or "libby" in n for n in names)


def test_an_excluded_name_never_reaches_a_pool_or_split(tmp_path):
    """A pool that holds benchmark images (as a hand-made or older conversion might) loses
    them before training; and a name on a test list is refused by the converters."""
    exclusion.add_names("shen", ["00042"])
    root = tmp_path / "pairs"
    for stem in ("00041", "00042"):
        _photo(root / f"img/{stem}.jpg")
        _png(root / f"mask/{stem}.png", _box() * 255)
    out = tmp_path / "out"
    counts = convert.convert(convert.pairs_items(root / "img", root / "mask"), "shen", out)
    assert counts["kept"] == 1 and counts["excluded"] == 1
    assert list(_masks(out)) == ["images/shen/00041.jpg"]

    d = json.loads((out / "annotations.json").read_text())
    extra = [
        dict(d["images"][0], id=2, file_name="images/coco/val2017/000000000139.jpg", source="coco"),
        dict(d["images"][0], id=3, file_name="images/davis/soapbox_00003.jpg", source="davis"),
        dict(d["images"][0], id=4, file_name="images/shen/00042.jpg"),
    ]
    d["images"] += extra
    (out / "annotations.json").write_text(json.dumps(d))
    coco = load_coco(out / "annotations.json")
    assert pool_ids(coco) == [1]
    assert exclusion.excluded_reason("davis", "images/davis/hike_00003.jpg") == ""


def test_wrong_layout_is_a_one_line_error(tmp_path):
    with pytest.raises(VbgError, match="not a P3M-10k layout"):
        list(convert.p3m_items(tmp_path))
