"""The IoU-against-ms report: every system timed in the same rounds, one row each."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import iou_vs_ms as ivm


def test_systems_are_timed_interleaved_and_reported_per_name():
    calls = []
    systems = [
        ivm.System("a", lambda f: calls.append("a"), None),
        ivm.System("b", lambda f: calls.append("b"), None),
    ]
    speed = ivm.time_systems(systems, rounds=2, block=3)
    assert set(speed) == {"a", "b"} and all(v["min"] <= v["ms"] <= v["max"] for v in speed.values())
    timed = calls[10:]  # after 5 warm-up calls each
    assert timed == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3  # rotated in round 2


def test_markdown_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        {"name": "vbg default", "speed": {"ms": 3.1, "min": 3.0, "max": 3.3},
         "quality": {"iou": 0.9151, "boundary_iou": 0.46, "dtssd": 8.19,
                     "per_source_iou": {"davis": 0.8336, "portrait": 0.9657}}},
        {"name": "RVM", "speed": {"ms": 55.0, "min": 54.0, "max": 58.0},
         "quality": {"iou": 0.9312, "per_source_iou": {"davis": 0.9073}}},
    ]  # fmt: skip
    report = {"machine": {"cpu": "test cpu"}, "threads": 2, "set": "test.json", "systems": rows}
    md = ivm.markdown(report)
    assert "| vbg default | 3.10 (3.00-3.30) | 0.9151 | 0.8336 | 0.9657 | 0.460 | 8.19 |" in md
    assert "| RVM | 55.00 (54.00-58.00) | 0.9312 | 0.9073 | nan |" in md
    ivm.plot(report, tmp_path / "p.png")
    import cv2

    img = cv2.imread(str(tmp_path / "p.png"))
    assert img is not None and img.shape[1] > 1000 and np.std(img) > 5
