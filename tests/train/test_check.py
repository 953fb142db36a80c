"""`python -m train check` on a generated set, on corrupted copies, and on the real corpus."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pycocotools")
pytest.importorskip("matplotlib")
# pycocotools under numpy 2 warns on every decode; nothing this project can act on.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"
)

from tests.cocogen import make_coco  # noqa: E402
from train.check import check_dataset, decode_segmentation  # noqa: E402

PLOTS = ("persons_per_image.png", "image_sizes.png", "area_fraction.png")


def _cli(argv: list[str]) -> int:
    from train.__main__ import main

    return main(argv)


@pytest.fixture(scope="module")
def good_set(tmp_path_factory) -> tuple[Path, Path]:
    return make_coco(tmp_path_factory.mktemp("good"), n_images=16)


def _copy(good_set, dst: Path) -> tuple[Path, Path, dict]:
    """A writable copy of the generated set: (ann json, images root, its data)."""
    src_root = good_set[0].parent.parent
    shutil.copytree(src_root, dst)
    ann = dst / "annotations" / "instances.json"
    return ann, dst / "images", json.loads(ann.read_text())


def test_check_passes_and_writes_the_report(good_set, tmp_path, capsys):
    ann, root = good_set
    out = tmp_path / "report"
    assert _cli(["check", "--ann", str(ann), "--images", str(root), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "data OK" in stdout and "16 images" in stdout
    report = (out / "report.md").read_text()
    assert "PASS" in report
    for p in PLOTS:
        img = cv2.imread(str(out / p))
        assert img is not None and img.shape[0] > 100, p
        assert f"]({p})" in report
    # Per source: the generated set has stills and video frames.
    assert "| still | video | all |" in report
    result = json.loads((out / "check.json").read_text())
    assert result["ok"] is True and result["problems"] == []
    c = result["counts"]
    assert (
        c["images"] == 16 and c["crowd_annotations"] == 1 and c["other_category_annotations"] == 1
    )
    assert c["images_without_person"] == 2
    assert result["skipped"]["annotation of another category (not person)"] == 1
    assert set(result["summary"]) == {"still", "video", "all"}


def test_check_names_every_problem(good_set, tmp_path, capsys):
    ann, root, data = _copy(good_set, tmp_path / "broken")
    images = sorted(data["images"], key=lambda im: im["id"])
    jpgs = [im for im in images if im["file_name"].endswith(".jpg")]
    missing, truncated, resized = jpgs[0], jpgs[1], jpgs[2]

    (root / missing["file_name"]).unlink()
    blob = (root / truncated["file_name"]).read_bytes()
    (root / truncated["file_name"]).write_bytes(blob[: len(blob) * 2 // 3])
    resized["width"] += 8  # the JSON now disagrees with the file
    anns = data["annotations"]
    rle = next(
        a
        for a in anns
        if isinstance(a["segmentation"], dict) and isinstance(a["segmentation"]["counts"], str)
    )
    poly = next(
        a for a in anns if isinstance(a["segmentation"], list) and a["image_id"] != resized["id"]
    )
    anns.append({**rle, "id": 90001, "image_id": 424242})  # points at no image
    anns.append(
        {
            **rle,
            "id": 90002,
            "segmentation": {"size": rle["segmentation"]["size"], "counts": "garbage"},
        }
    )
    anns.append({**poly, "id": 90003, "segmentation": [[1.0, 2.0, 3.0]]})  # too short
    anns.append({**rle, "id": 90004, "category_id": 77})  # unknown category
    anns.append({**rle, "id": 90005, "segmentation": {**rle["segmentation"], "size": [10, 10]}})
    anns.append({**poly, "id": 90006, "bbox": [0, 0, 5000, 10]})
    anns.append(dict(anns[0]))  # duplicate annotation id
    data["images"].append(dict(images[-1]))  # duplicate image id
    ann.write_text(json.dumps(data))

    out = tmp_path / "report"
    code = _cli(["check", "--ann", str(ann), "--images", str(root), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "data is broken" in err
    expected = {
        "missing_file": missing["file_name"],
        "truncated_image": truncated["file_name"],
        "size_mismatch": resized["file_name"],
        "unknown_image_id": "annotation 90001",
        "bad_segmentation": "annotation 90002",
        "unknown_category": "annotation 90004",
        "mask_outside_image": "annotation 90005",
        "duplicate_annotation_id": f"annotation {anns[0]['id']}",
        "duplicate_image_id": f"image {images[-1]['id']}",
    }
    lines = err.splitlines()
    for kind, where in expected.items():
        assert any(kind in line and where in line for line in lines), (kind, where, err)
    assert any("bad_segmentation" in line and "annotation 90003" in line for line in lines)
    assert any("mask_outside_image" in line and "annotation 90006" in line for line in lines)

    result = json.loads((out / "check.json").read_text())
    assert result["ok"] is False
    assert set(expected) <= set(result["problem_kinds"])
    report = (out / "report.md").read_text()
    assert "FAIL" in report and missing["file_name"] in report and truncated["file_name"] in report
    assert result["skipped"]["image: missing file"] == 1
    assert result["skipped"]["annotation of an unknown image"] == 1
    assert all((out / p).is_file() for p in PLOTS)  # the EDA still runs on what is readable


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"images": [], "categories": []}', "no 'annotations' list"),
        ("[1, 2]", "top level"),
    ],
)
def test_broken_json_fails_with_one_problem(tmp_path, text, message, capsys):
    ann = tmp_path / "a.json"
    ann.write_text(text)
    code = _cli(
        ["check", "--ann", str(ann), "--images", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert code == 1
    assert message in capsys.readouterr().err
    assert (tmp_path / "o" / "report.md").is_file()


def test_truncated_png_and_unreadable_files(good_set, tmp_path):
    ann, root, data = _copy(good_set, tmp_path / "b")
    png = next(im for im in data["images"] if im["file_name"].endswith(".png"))
    blob = (root / png["file_name"]).read_bytes()
    (root / png["file_name"]).write_bytes(blob[:-20])
    jpg = next(im for im in data["images"] if im["file_name"].endswith(".jpg"))
    (root / jpg["file_name"]).write_bytes(b"this is not an image")
    res = check_dataset(ann, root)
    kinds = {(p.kind, p.file) for p in res.problems}
    assert ("truncated_image", png["file_name"]) in kinds
    assert ("unreadable_image", jpg["file_name"]) in kinds
    assert not res.ok


def test_decode_segmentation_rejects_what_pycocotools_would_misread():
    h, w = 10, 12
    m = np.zeros((h, w), np.uint8)
    m[2:5, 3:9] = 1
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(m))
    good = {"size": [h, w], "counts": rle["counts"].decode()}
    np.testing.assert_array_equal(decode_segmentation(good, h, w), m)
    # pycocotools decodes "" (and other short strings) to uninitialised memory.
    for counts in ("", "0", "zzzz"):
        with pytest.raises(ValueError):
            decode_segmentation({"size": [h, w], "counts": counts}, h, w)
    with pytest.raises(ValueError):
        decode_segmentation({"size": [h, w], "counts": [5, 200]}, h, w)
    with pytest.raises(IndexError):
        decode_segmentation({"size": [h + 1, w], "counts": good["counts"]}, h, w)
    with pytest.raises(IndexError):
        decode_segmentation([[0, 0, 30, 0, 30, 5]], h, w)
    with pytest.raises(ValueError):
        decode_segmentation([[0, 0, 3, 0, 3]], h, w)
    with pytest.raises(ValueError):
        decode_segmentation("a string", h, w)
    np.testing.assert_array_equal(decode_segmentation([[3, 2, 9, 2, 9, 5, 3, 5]], h, w), m)


@pytest.mark.data
def test_check_passes_on_the_real_corpus(persons_dir, tmp_path, capsys):
    t0 = time.perf_counter()
    ann = persons_dir / "annotations" / "instances_persons.json"
    out = tmp_path / "persons"
    code = _cli(["check", "--ann", str(ann), "--images", str(persons_dir), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "check.json").read_text())
    assert result["counts"]["images"] == result["counts"]["image_files_ok"] == 2665
    assert set(result["summary"]) == {"portrait", "ccp", "davis", "coco", "all"}
    assert all((out / p).is_file() for p in PLOTS)
    assert time.perf_counter() - t0 < 120
