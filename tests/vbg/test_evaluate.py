"""`vbg eval`: COCO mask decoding without pycocotools, and metrics on a generated set whose
answers are computed by hand."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from vbg import VbgError
from vbg.cli import main
from vbg.evaluate import (
    evaluate,
    format_table,
    load_person_set,
    polygons_to_mask,
    rle_counts_from_string,
    rle_counts_to_string,
    rle_decode,
    rle_encode,
    sequences,
)

# --------------------------------------------------------------------------- RLE / polygons


def random_masks(seed: int = 0):
    rng = np.random.default_rng(seed)
    yield np.zeros((7, 5), np.uint8)
    yield np.ones((7, 5), np.uint8)
    yield np.eye(9, 4, dtype=np.uint8)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if rng.random() < 0.5:  # blobs: long runs, multi-chunk counts and negative deltas
            m = cv2.dilate(m, np.ones((9, 9), np.uint8))
        yield m
    big = np.zeros((480, 640), np.uint8)
    cv2.ellipse(big, (320, 240), (150, 220), 0, 0, 360, 1, -1)
    yield big


def test_rle_matches_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    for m in random_masks():
        ref = mask_api.encode(np.asfortranarray(m))
        assert np.array_equal(rle_decode(ref), m)  # bytes counts, as pycocotools gives
        assert np.array_equal(rle_decode({**ref, "counts": ref["counts"].decode()}), m)
        ours = rle_encode(m)
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == list(ref["size"])
        assert np.array_equal(mask_api.decode({**ours, "counts": ours["counts"].encode()}), m)


def test_rle_roundtrip_without_pycocotools():
    for m in random_masks(1):
        assert np.array_equal(rle_decode(rle_encode(m)), m)
    counts = [0, 5, 300, 2, 70000, 1, 3]
    assert rle_counts_from_string(rle_counts_to_string(counts)) == counts


def test_uncompressed_rle_is_column_major():
    # 2x3, runs over columns: 1 zero, 3 ones, 2 zeros
    m = rle_decode({"size": [2, 3], "counts": [1, 3, 2]})
    assert m.tolist() == [[0, 1, 0], [1, 1, 0]]
    with pytest.raises(ValueError):
        rle_decode({"size": [2, 3], "counts": [1, 3]})


def test_polygon_fill_agrees_with_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(-5, 105, (8, 2))
        c = pts.mean(0)
        pts = pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))]
        poly = pts.ravel().tolist()
        ref = mask_api.decode(mask_api.frPyObjects([poly], 100, 120))[:, :, 0]
        ours = polygons_to_mask([poly], 100, 120)
        inter = np.logical_and(ref, ours).sum()
        union = np.logical_or(ref, ours).sum()
        assert inter / union > 0.97
    square = polygons_to_mask([[2, 1, 6, 1, 6, 4, 2, 4]], 6, 8)
    expected = np.zeros((6, 8), np.uint8)
    expected[1:4, 2:6] = 1
    assert np.array_equal(square, expected)


# --------------------------------------------------------------------------- a known data set

RED = (0, 0, 255)  # person pixels in the generated images (BGR)
N = 10  # images are N x N


def paint(mask: np.ndarray, bg_green: int = 0) -> np.ndarray:
    img = np.zeros((N, N, 3), np.uint8)
    img[:] = (255, bg_green, 0)
    img[mask > 0] = RED
    return img


@pytest.fixture()
def dataset(tmp_path):
    """3 stills (sources a, a, b) and a 4-frame video (source davis), 10x10 images."""
    root = tmp_path / "data"
    images, anns = [], []

    def add(img_id, name, mask_for_image, source, group, annotations):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), mask_for_image)
        images.append(
            {
                "id": img_id,
                "file_name": name,
                "width": N,
                "height": N,
                "source": source,
                "group": group,
            }
        )
        for a in annotations:
            anns.append(
                {"id": len(anns) + 1, "image_id": img_id, "area": 0, "bbox": [0, 0, 0, 0], **a}
            )

    # 1: person = rows 0-4, as compressed RLE
    m1 = np.zeros((N, N), np.uint8)
    m1[:5] = 1
    add(
        1,
        "a/1.png",
        paint(m1),
        "a",
        "a/1",
        [{"category_id": 1, "iscrowd": 0, "segmentation": rle_encode(m1)}],
    )
    # 2: person = columns 0-4, as a polygon; plus a non-person annotation that must be ignored
    m2 = np.zeros((N, N), np.uint8)
    m2[:, :5] = 1
    add(
        2,
        "a/2.png",
        paint(m2),
        "a",
        "a/2",
        [
            {"category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 5, 0, 5, 10, 0, 10]]},
            {"category_id": 2, "iscrowd": 0, "segmentation": [[5, 0, 10, 0, 10, 10, 5, 10]]},
        ],
    )
    # 3: a crowd region (uncompressed RLE) = rows 0-1: counted as person
    m3 = np.zeros((N, N), np.uint8)
    m3[:2] = 1
    crowd_counts = [0] + [2, 8] * N  # column-major: each column starts with 2 ones
    add(
        3,
        "b/3.png",
        paint(m3),
        "b",
        "b/3",
        [
            {
                "category_id": 1,
                "iscrowd": 1,
                "segmentation": {"size": [N, N], "counts": crowd_counts},
            }
        ],
    )
    # video: frame k = columns k..k+4; listed out of order, the background's green = k
    for k in (2, 0, 3, 1):
        mk = np.zeros((N, N), np.uint8)
        mk[:, k : k + 5] = 1
        add(
            10 + k,
            f"v/{k:05d}.png",
            paint(mk, bg_green=k),
            "davis",
            "davis/v",
            [{"category_id": 1, "iscrowd": 0, "segmentation": rle_encode(mk)}],
        )
    ann = tmp_path / "ann.json"
    ann.write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        )
    )
    return ann, root


class PerfectMasker:
    """Knows the colour code: exactly the ground truth."""

    def __init__(self) -> None:
        self.resets = 0
        self.greens: list[int] = []

    def reset(self) -> None:
        self.resets += 1

    def mask(self, frame: np.ndarray) -> np.ndarray:
        self.greens.append(int(frame[9, 9, 1]))
        red = (frame[:, :, 2] > 128) & (frame[:, :, 0] < 128)
        return np.where(red, 255, 0).astype(np.uint8)


class LeftHalfMasker(PerfectMasker):
    def mask(self, frame: np.ndarray) -> np.ndarray:
        m = np.zeros(frame.shape[:2], np.uint8)
        m[:, :5] = 200  # >= 128: person
        m[:, 5:] = 127  # < 128: background
        return m


class FlickerMasker(PerfectMasker):
    """Perfect, plus one extra column on every other call."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def mask(self, frame: np.ndarray) -> np.ndarray:
        m = super().mask(frame)
        self.n += 1
        if self.n % 2:
            m[:, -1] = 255
        return m


def test_person_set_and_sequences(dataset):
    ann, _ = dataset
    images = load_person_set(ann)
    assert len(images) == 7
    assert [len(im.anns) for im in images[:3]] == [1, 1, 1]  # category 2 dropped
    seqs = sequences(images)
    assert [len(s) for s in seqs] == [1, 1, 1, 4]
    assert [im.file_name for im in seqs[3]] == [f"v/{k:05d}.png" for k in range(4)]


def test_perfect_predictor(dataset):
    ann, root = dataset
    m = PerfectMasker()
    r = evaluate(ann, root, m)
    assert r["images"] == 7
    assert r["iou"] == r["dice"] == r["pixel_acc"] == 1.0
    assert r["dtssd"] == 0.0
    assert set(r["per_source"]) == {"a", "b", "davis"}
    assert m.resets == 4  # before each still, once before the video
    assert m.greens[-4:] == [0, 1, 2, 3]  # video frames in file-name order


def test_known_predictor_matches_hand_computation(dataset):
    ann, root = dataset
    r = evaluate(ann, root, LeftHalfMasker())
    rows = {row["file_name"]: row for row in r["per_image"]}
    # 1: truth rows 0-4, prediction columns 0-4: tp 25, fp 25, fn 25, tn 25
    assert rows["a/1.png"]["iou"] == pytest.approx(25 / 75)
    assert rows["a/1.png"]["dice"] == pytest.approx(0.5)
    assert rows["a/1.png"]["pixel_acc"] == pytest.approx(0.5)
    # 2: exact
    assert rows["a/2.png"]["iou"] == 1.0
    # 3: crowd rows 0-1: tp 10, fp 40, fn 10, tn 40
    assert rows["b/3.png"]["iou"] == pytest.approx(10 / 60)
    assert rows["b/3.png"]["dice"] == pytest.approx(20 / 70)
    assert rows["b/3.png"]["pixel_acc"] == pytest.approx(0.5)
    # video frame k: truth columns k..k+4: tp 50-10k, fp = fn = 10k, tn 50-10k
    video_iou = [(50 - 10 * k) / (50 + 10 * k) for k in range(4)]
    video_dice = [1 - 0.2 * k for k in range(4)]
    for k in range(4):
        assert rows[f"v/{k:05d}.png"]["iou"] == pytest.approx(video_iou[k])
        assert rows[f"v/{k:05d}.png"]["dice"] == pytest.approx(video_dice[k])
    all_iou = [25 / 75, 1.0, 10 / 60, *video_iou]
    assert r["iou"] == pytest.approx(sum(all_iou) / 7)
    assert r["pixel_acc"] == pytest.approx((0.5 + 1 + 0.5 + sum(video_dice)) / 7)
    assert r["per_source"]["a"]["iou"] == pytest.approx((25 / 75 + 1) / 2)
    assert r["per_source"]["b"]["images"] == 1
    assert r["per_source"]["davis"]["iou"] == pytest.approx(sum(video_iou) / 4)
    # dtSSD: the prediction stands still (soft alpha 200/255 | 127/255), the truth moves one
    # column per frame: 20 of 100 pixels change by 1, so RMS = sqrt(0.2), x100
    assert r["dtssd"] == pytest.approx(100 * math.sqrt(0.2), rel=1e-5)


def test_flickering_predictor_has_positive_dtssd(dataset):
    ann, root = dataset
    r = evaluate(ann, root, FlickerMasker())
    # the last column toggles every frame: 10 of 100 pixels change by 1 each pair
    assert r["dtssd"] == pytest.approx(100 * math.sqrt(0.1), rel=1e-5)
    assert r["dtssd"] > 0


def test_no_video_no_dtssd_and_table(dataset, tmp_path):
    ann, root = dataset
    d = json.loads(ann.read_text())
    d["images"] = [im for im in d["images"] if im["source"] != "davis"]
    for im in d["images"]:
        del im["source"]
    still = tmp_path / "still.json"
    still.write_text(json.dumps(d))
    r = evaluate(still, root, PerfectMasker())
    assert "dtssd" not in r and "per_source" not in r and r["images"] == 3
    assert "all" in format_table(r)


def test_bad_inputs(dataset, tmp_path):
    ann, root = dataset
    with pytest.raises(VbgError, match="cannot read image"):
        evaluate(ann, tmp_path / "elsewhere", PerfectMasker())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(VbgError, match="not valid JSON"):
        load_person_set(bad)
    bad.write_text(json.dumps({"images": [{"id": 1}]}))
    with pytest.raises(VbgError, match="not COCO format"):
        load_person_set(bad)
    d = json.loads(ann.read_text())
    d["images"][0]["width"] = 11
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(d))
    with pytest.raises(VbgError, match="annotation file says 11x10"):
        evaluate(wrong, root, PerfectMasker())


def test_vbg_eval_cli_writes_json(dataset, tiny_card, tmp_path, capsys):
    ann, root = dataset
    out = tmp_path / "report" / "eval.json"
    out.parent.mkdir()
    code = main(
        ["eval", "--ann", str(ann), "--images", str(root), "--model", str(tiny_card)]
        + ["--engine", "onnxruntime", "--threads", "1", "--json", str(out), "--no-progress"]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "IoU" in stdout and "davis" in stdout and "dtSSD" in stdout
    r = json.loads(out.read_text())
    for key in (
        "images",
        "dice",
        "iou",
        "pixel_acc",
        "per_source",
        "dtssd",
        "model",
        "engine",
        "per_image",
    ):
        assert key in r, key
    assert r["images"] == 7 and r["engine"] == "onnxruntime" and r["model"] == "tiny-test"
    assert len(r["per_image"]) == 7 and 0.0 <= r["iou"] <= 1.0
