"""The bundled default model: it loads from its card, stays small, and segments real people."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vbg.assets import default_card_path
from vbg.card import load_card
from vbg.metrics import image_metrics


def test_default_card_loads_and_its_weights_match():
    card = load_card(default_card_path())
    onnx = card.verify_file("onnx")  # sha256 recorded by `train export`
    assert onnx.stat().st_size < 30e6
    assert card.output.kind == "logits" and card.input.fit == "area"
    # A 16:9 webcam frame lands exactly on the nominal input size.
    assert card.input.size_for(720, 1280) == (card.input.height, card.input.width)
    assert card.metrics, "the card should carry the test metrics it was released with"


@pytest.mark.data
def test_default_model_segments_real_people_from_the_test_split(persons_dir):
    """Portraits from the held-out test split of the real corpus, through the same path as
    `vbg process` (preprocess, engine, smoothing reset per still, upsampling), IoU >= 0.9."""
    pytest.importorskip("pycocotools")
    from train.split import grouped_split
    from vbg.evaluate import annotation_mask
    from vbg.pipeline import build_processor

    ann = json.loads((persons_dir / "annotations" / "instances_persons.json").read_text())
    test_ids = set(grouped_split(ann["images"], seed=0)["test"])
    portraits = [im for im in ann["images"] if im["id"] in test_ids and im["source"] == "portrait"]
    assert portraits, "the test split has portraits"
    proc = build_processor(None, engine="onnxruntime", threads=2, background=None)
    try:
        for im in portraits[:4]:
            frame = cv2.imread(str(persons_dir / im["file_name"]))
            truth = np.zeros((im["height"], im["width"]), bool)
            for a in ann["annotations"]:
                if a["image_id"] == im["id"] and a["category_id"] == 1:
                    truth |= annotation_mask(a, im["height"], im["width"]) > 0
            proc.reset()
            alpha = proc.mask(frame)
            iou = image_metrics(alpha >= 128, truth)["iou"]
            assert iou >= 0.9, f"{im['file_name']}: IoU {iou:.3f}"
    finally:
        proc.close()


def test_cpu_engines_run_the_int8_copy_and_the_others_the_float_model():
    from vbg.assets import int8_card_path, sample_clip_path
    from vbg.pipeline import _card_path, build_processor
    from vbg.sources import open_input

    assert int8_card_path().is_file(), "the INT8 copy ships with the default model"
    assert _card_path(None, "onnxruntime") == int8_card_path()
    assert _card_path(None, "torch") == default_card_path()
    assert _card_path(None, "onnxruntime", "cuda") == default_card_path()
    assert _card_path("x.json", "onnxruntime") == Path("x.json")  # --model wins
    src = open_input(sample_clip_path())
    frame = next(iter(src)).image
    src.close()
    int8 = build_processor(engine="onnxruntime", background=None)
    full = build_processor(default_card_path(), engine="onnxruntime", background=None)
    try:
        assert int8.segmenter.card.name == "default-int8"
        assert full.segmenter.card.name == "default"
        # The same person as the float model on the bundled clip's first frame.
        a, b = int8.mask(frame) >= 128, full.mask(frame) >= 128
        assert (a & b).sum() / (a | b).sum() > 0.97
    finally:
        int8.close()
        full.close()
