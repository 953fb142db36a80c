"""Synthetic composites and clips, and the pool check over them (on the generated COCO set)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from tests.cocogen import make_coco
from train import check
from train.composite import CompositeConfig, generate, training_ids
from train.data import load_coco, person_mask
from train.pool_check import DUP_BITS, dhash, hamming, near_pairs
from train.sources.cocowriter import CocoWriter


def _textured_set(root: Path, n: int = 16) -> tuple[Path, Path]:
    """n photos of distinct blurred-noise scenes, one box-shaped person each (dHash needs
    real texture: cocogen's flat scenes all hash alike)."""
    rng = np.random.default_rng(1)
    w = CocoWriter("test")
    for k in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (21, 21), 0)
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
        m = np.zeros((96, 128), np.uint8)
        m[20 + k % 5 : 96, 30 + 3 * k : 60 + 3 * k] = 1
        name = f"images/p{k:02d}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), img)
        w.add(name, (96, 128), [m], source="photo")
    return w.write(root / "ann.json"), root


def _build(tmp_path: Path, textured: bool = False) -> tuple[Path, Path, Path]:
    if textured:
        ann, images = _textured_set(tmp_path / "set")
    else:
        ann, images = make_coco(tmp_path / "set", n_images=16, size=(96, 128))
    bgs = tmp_path / "bgs"
    bgs.mkdir()
    grad = np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (150, 1))
    cv2.imwrite(str(bgs / "grad.jpg"), cv2.merge([grad, 255 - grad, grad]))
    out = tmp_path / "comp"
    cfg = CompositeConfig(n_images=12, n_clips=2, clip_frames=5, seed=0, max_side=128)
    counts = generate(load_coco(ann), images, [bgs], out, cfg)
    assert counts == {"composites": 12, "clip_frames": 10, "clips": 2}
    return ann, images, out


def test_composites_use_training_people_only_and_masks_match_pixels(tmp_path):
    ann, images, out = _build(tmp_path)
    train = set(training_ids(json.loads(ann.read_text())))
    comp = load_coco(out / "composites.json")
    for i, im in comp.imgs.items():
        assert set(im["origin"]) <= train  # no val/test person in a composite
        assert im["kind"] in ("portrait", "fullbody", "multi")
        mask, _ = person_mask(comp, i)
        img = cv2.imread(str(out / im["file_name"]))
        assert img.shape[:2] == mask.shape and mask.any()
    clips = load_coco(out / "synclips.json")
    groups = {im["group"] for im in clips.imgs.values()}
    assert len(groups) == 2 and all(im["kind"] == "video" for im in clips.imgs.values())
    # Motion is smooth: consecutive frames' masks overlap far more than they differ.
    frames = sorted((im["file_name"], i) for i, im in clips.imgs.items())[:5]
    masks = [person_mask(clips, i)[0] for _, i in frames]
    for a, b in zip(masks, masks[1:], strict=False):
        inter, union = (a & b).sum(), (a | b).sum()
        assert inter / union > 0.5


def test_dhash_finds_a_reencoded_copy_and_tells_images_apart(tmp_path):
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (15, 15), 0)
    b = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (15, 15), 0)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    cv2.imwrite(
        str(tmp_path / "a_small.jpg"), cv2.resize(a, (80, 60)), [cv2.IMWRITE_JPEG_QUALITY, 70]
    )
    cv2.imwrite(str(tmp_path / "b.png"), b)
    h = np.array([dhash(tmp_path / n) for n in ("a.png", "a_small.jpg", "b.png")], np.uint64)
    d = hamming(h, h)
    assert d[0, 1] <= DUP_BITS and d[0, 2] > 2 * DUP_BITS
    pairs = near_pairs(h, h, DUP_BITS)
    assert (0, 1) in pairs and (0, 2) not in pairs


def test_check_mix_reports_the_pool_and_catches_an_evaluation_image(tmp_path, capsys):
    ann, images, out = _build(tmp_path, textured=True)
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        f"pools:\n  - {{ann: {out / 'composites.json'}, images: {out}}}\n"
        f"  - {{ann: {out / 'synclips.json'}, images: {out}}}\n"
    )
    args = argparse.Namespace(
        ann=str(ann),
        images=str(images),
        out=str(tmp_path / "rep"),
        workers=1,
        max_listed=10,
        mix=str(mix),
    )
    assert check.run(args) == 0
    summary = json.loads((tmp_path / "rep" / "pool.json").read_text())
    assert summary["per_source"]["composite"] == 12 and summary["per_source"]["synclip"] == 10
    assert summary["per_source"]["photo"] == len(training_ids(json.loads(ann.read_text())))
    assert summary["eval_leaks"] == []
    assert "Per kind" in (tmp_path / "rep" / "pool.md").read_text()

    # A pool that holds a copy of a test image is a failure, and says which.
    d = json.loads(ann.read_text())
    from train.split import grouped_split

    test_id = grouped_split(d["images"], seed=0)["test"][0]
    leak = dict(next(im for im in d["images"] if im["id"] == test_id), id=1, source="leaky")
    anns = [dict(a, id=1, image_id=1) for a in d["annotations"] if a["image_id"] == test_id][:1]
    (tmp_path / "leak.json").write_text(json.dumps(dict(d, images=[leak], annotations=anns)))
    mix.write_text(f"pools:\n  - {{ann: {tmp_path / 'leak.json'}, images: {images}}}\n")
    assert check.run(args) == 1
    summary = json.loads((tmp_path / "rep" / "pool.json").read_text())
    assert len(summary["eval_leaks"]) >= 1
