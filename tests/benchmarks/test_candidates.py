"""benchmarks/candidates.py: a candidate exports, loads in vbg's engine and is timed;
the report renders."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("segmentation_models_pytorch")


def test_a_candidate_exports_and_runs_in_vbgs_engine(tmp_path):
    from benchmarks.candidates import Candidate, export_candidate, time_runs
    from vbg.card import load_card
    from vbg.engines import create_engine

    c = Candidate("mv2 tiny", "mobilenet_v2", (16, 16, 8, 8, 8), 64, 96, True)
    card_path, params = export_candidate(c, tmp_path)
    assert 2e6 < params < 3e6  # the MobileNetV2 encoder dominates
    eng = create_engine("onnxruntime", load_card(card_path), threads=1)
    x = np.zeros((1, 3, 64, 96), np.float32)
    assert eng.run(x).shape == (1, 1, 64, 96)
    assert time_runs(eng.run, x, 3) > 0


def test_report_table_and_plot(tmp_path):
    from benchmarks.candidates import markdown, plot

    report = {
        "machine": {"cpu": "test"},
        "threads": 2,
        "rounds": 1,
        "runs_per_round": 1,
        "note": "",
        "rows": {
            "a": {"input": "160x288", "parameters": 3.1e6, "imagenet_weights_offline": True,
                  "iou_live": 0.9, "ms": {"openvino": {"median": 5.0, "min": 4.9, "max": 5.2}}},
            "b": {"input": "144x256", "parameters": 7e5, "imagenet_weights_offline": False,
                  "iou_live": None, "ms": {"openvino": {"median": 2.0, "min": 1.9, "max": 2.1}}},
        },
    }  # fmt: skip
    md = markdown(report)
    assert "| a | 160x288 | 3.10 M | yes | 5.0 (4.9-5.2) | 0.9000 |" in md
    assert "| b | 144x256 | 0.70 M | no | 2.0 (1.9-2.1) | not trained |" in md
    pytest.importorskip("matplotlib")
    plot(report, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
