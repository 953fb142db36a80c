"""train evaluate: full-resolution metrics through the runtime's preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("pycocotools")

import train.evaluate as ev  # noqa: E402
from tests.cocogen import expected_mask  # noqa: E402
from tests.train.fitutil import tiny_config, tiny_data  # noqa: E402
from train.__main__ import main  # noqa: E402
from train.fit import fit  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    ann, images = tiny_data(root / "coco", n_images=24)
    fit(tiny_config(ann, images, root / "run", split=(0.5, 0.25, 0.25)))
    return root / "run", ann


def _test_ids(run_dir):
    return json.loads((run_dir / "splits" / "ids.json").read_text())["test"]


def test_evaluate_writes_metrics_and_grid(run, capsys):
    run_dir, _ = run
    assert main(["evaluate", "--run", str(run_dir), "--tta"]) == 0
    printed = capsys.readouterr().out
    assert "test (all)" in printed
    m = json.loads((run_dir / "metrics_test.json").read_text())
    ids = _test_ids(run_dir)
    assert m["images"] == len(ids) == len(m["per_image"])
    assert sorted(r["id"] for r in m["per_image"]) == sorted(ids)
    assert m["tta"] is True
    for key in ("dice", "iou", "pixel_acc"):
        assert m[key] == pytest.approx(np.mean([r[key] for r in m["per_image"]]))
    assert sum(s["images"] for s in m["per_source"].values()) == m["images"]
    png = run_dir / "comparison.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    import cv2

    grid = cv2.imread(str(png))
    assert grid.shape[1] == 4 * ev.CELL[1]  # original | truth | prediction | composite
    assert grid.shape[0] == 28 + min(12, len(ids)) * (20 + ev.CELL[0])


def test_metrics_are_computed_at_full_resolution(run, monkeypatch):
    """With a predictor that says "nobody" everywhere, IoU is 0 on images with people and
    pixel accuracy is the background share of the ORIGINAL image's true mask."""
    run_dir, ann = run
    monkeypatch.setattr(
        ev, "predict_prob", lambda model, x, **kw: np.zeros(x.shape[2:], np.float32)
    )
    result = ev.evaluate_run(run_dir, split="val", grid=False)
    assert result["split"] == "val"
    for row in result["per_image"]:
        truth = expected_mask(ann, row["id"])
        assert row["pixel_acc"] == pytest.approx(1.0 - truth.mean(), abs=1e-9)
        assert row["iou"] == (1.0 if truth.sum() == 0 else 0.0)
    assert (run_dir / "metrics_val.json").is_file()


def test_perfect_model_resolution_prediction_scores_high(run, monkeypatch):
    """The truth, downsampled to the model input and upsampled back by the runtime's
    prob_to_frame, is nearly perfect at full resolution (only resampling at the edges)."""
    import cv2

    run_dir, ann = run
    current = {}

    def fake_predict(model, x, **kw):
        truth = expected_mask(ann, current["id"]).astype(np.float32)
        h, w = x.shape[2:]
        return cv2.resize(truth, (w, h), interpolation=cv2.INTER_AREA)

    import train.data as data

    real = data.person_mask

    def spy(coco, img_id):
        current["id"] = img_id
        return real(coco, img_id)

    monkeypatch.setattr(data, "person_mask", spy)
    monkeypatch.setattr(ev, "predict_prob", fake_predict)
    result = ev.evaluate_run(run_dir, split="test", grid=False)
    assert result["iou"] > 0.85 and result["pixel_acc"] > 0.97


def test_missing_run_is_one_line_error(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path)]) == 1
    assert "not a run folder" in capsys.readouterr().err
