"""benchmarks/gpu.py end to end on torch's CPU device (its GPU run needs a lent GPU)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")


@pytest.mark.slow
def test_gpu_benchmark_smoke_run_on_the_cpu_writes_its_report(tmp_path, sample_clip):
    from benchmarks import gpu

    code = gpu.main(
        [
            str(tmp_path),
            "--device",
            "cpu",
            "--quick",
            "--frames",
            "3",
            "--sizes",
            "360p",
            "--clip-frames",
            "8",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "gpu.json").read_text())
    agree = report["agreement"]["torch"]
    assert agree["pass"] and agree["iou_min"] >= 0.99
    assert report["live"]["torch@360p"]["end_to_end_ms"]["p50"] > 0
    assert report["batched"]["batch2"]["fps"] > 0
    files = report["files"]
    assert files["offline_defaults"]["frames"] == 8
    assert files["live_defaults"]["processor"] == "DeviceFrameProcessor"
    assert "| torch |" in (tmp_path / "gpu.md").read_text()
