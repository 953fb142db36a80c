"""`vbg bench` and the measuring code the benchmarks/ scripts share (vbg.bench).

The timer and percentiles have their own tests (test_timing.py); here: the bench command
end to end on the tiny model, and the pieces it is made of, with fakes where timing matters.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

from vbg import VbgError
from vbg import bench as vb
from vbg.timing import STAGES, StageTimer


def test_bench_cli_synthetic_smoke(tiny_card, tmp_path, capsys):
    from vbg.cli import main

    out = tmp_path / "bench.json"
    argv = ["bench", "--synthetic", "320x240", "--frames", "20", "--warmup", "2"]
    argv += ["--block", "7", "--model", str(tiny_card), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "FPS" in printed and "inference" in printed

    report = json.loads(out.read_text())
    assert report["benchmark"] == "vbg bench"
    for key in ("cpu", "logical_cores", "usable_cores", "engine_threads", "python"):
        assert key in report["machine"]
    cfg = report["config"]
    assert cfg["input_size"] == "320x240" and cfg["frames"] == 20 and cfg["paced"] is False
    assert report["results"], "every available engine is benchmarked by default"
    names = [r["name"] for r in report["results"]]
    assert "onnxruntime" in names
    for r in report["results"]:
        assert r["model"] == "tiny-test"
        assert r["input_size"] == "320x240"
        assert r["model_input"] == "96x64"  # area fit of 320x240 into 64x96, multiples of 32
        assert r["frames"] == 20
        assert r["fps"] > 0 and r["cpu_ms_per_frame"] > 0
        # Every pipeline stage was timed once per timed frame, warm-up excluded.
        for stage in (*STAGES, "total"):
            st = r["stages_ms"][stage]
            assert st["n"] == 20, stage
            assert 0 <= st["p50"] <= st["p95"] <= st["p99"]
        assert r["end_to_end_ms"]["n"] == 20
        # The whole frame takes at least as long as its stages added up.
        assert r["end_to_end_ms"]["p50"] >= 0.9 * r["stages_ms"]["total"]["p50"]


def test_bench_unknown_engine_is_one_line_error(tiny_card, capsys):
    from vbg.cli import main

    argv = ["bench", "--synthetic", "64x64", "--frames", "1", "--engine", "nope"]
    assert main([*argv, "--model", str(tiny_card)]) == 1
    err = capsys.readouterr().err
    assert "unknown engine 'nope'" in err and "onnxruntime" in err


def test_bench_file_input_resized(tiny_card, sample_clip, tmp_path):
    parser = argparse.ArgumentParser()
    vb.add_arguments(parser)
    args = parser.parse_args(
        ["--input", str(sample_clip), "--size", "320x180", "--frames", "6", "--warmup", "1"]
        + ["--engine", "onnxruntime", "--model", str(tiny_card), "--background", "blur"]
    )
    report = vb.bench(args, out=open(tmp_path / "table.txt", "w"))  # noqa: SIM115
    (r,) = report["results"]
    assert r["input_size"] == "320x180" and r["stages_ms"]["output"]["n"] == 6
    assert report["config"]["input"] == str(sample_clip)


def test_parse_size():
    assert vb.parse_size("1280x720") == (1280, 720)
    for bad in ("1280", "axb", "8x8"):
        with pytest.raises(VbgError):
            vb.parse_size(bad)


def test_synthetic_frames_move_and_are_deterministic():
    a = vb.synthetic_frames(160, 120, count=4)
    b = vb.synthetic_frames(160, 120, count=4)
    assert len(a) == 4
    for f in a:
        assert f.shape == (120, 160, 3) and f.dtype == np.uint8 and f.flags.c_contiguous
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])  # the figure moves


def test_load_frames_counts_and_resizes(sample_clip):
    frames, fps = vb.load_frames(sample_clip, 5, size=(192, 108))
    assert len(frames) == 5 and fps == pytest.approx(30, rel=0.01)
    assert frames[0].shape == (108, 192, 3)


def test_schedule_rotates_and_covers_every_frame():
    s = vb.schedule(["a", "b"], 10, 4)
    assert s == [
        ("a", 0, 4), ("b", 0, 4),
        ("b", 4, 8), ("a", 4, 8),
        ("a", 8, 10), ("b", 8, 10),
    ]  # fmt: skip
    s3 = vb.schedule(["a", "b", "c"], 9, 3)
    firsts = [s3[i][0] for i in range(0, len(s3), 3)]
    assert firsts == ["a", "b", "c"]  # each takes the first slot in turn
    for name in "abc":
        covered = sorted(i for n, lo, hi in s3 if n == name for i in range(lo, hi))
        assert covered == list(range(9))
    with pytest.raises(ValueError):
        vb.schedule(["a"], 3, 0)


class FakeProcessor:
    """Sleeps `ms` inside named stages: a processor whose cost is known."""

    def __init__(self, ms: float = 1.0) -> None:
        self.timer = StageTimer()
        self.ms = ms
        self.resets = 0
        self.seen: list[int] = []

    def process(self, frame):
        self.seen.append(int(frame[0, 0, 0]))
        with self.timer.stage("inference"):
            time.sleep(self.ms / 1000.0)
        with self.timer.stage("compositing"):
            pass
        return frame

    def reset(self) -> None:
        self.resets += 1


class ListSink:
    def __init__(self) -> None:
        self.n = 0

    def write(self, frame, pts=None) -> None:
        self.n += 1


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), i, np.uint8) for i in range(n)]


def test_measure_interleaves_warms_up_and_counts():
    fast, slow = FakeProcessor(0.5), FakeProcessor(4.0)
    cs = [vb.Contender("fast", fast, ListSink()), vb.Contender("slow", slow, ListSink())]
    order = []
    vb.measure(
        cs, _frames(5), n_frames=12, warmup=3, block=4, on_block=lambda n, a, b: order.append(n)
    )
    assert order == ["fast", "slow", "slow", "fast", "fast", "slow"]
    for c, p in zip(cs, (fast, slow), strict=True):
        assert c.frames == 12 and c.sink.n == 15  # warm-up frames reach the sink too
        assert p.resets == 1  # state cleared after warm-up
        assert p.seen[3:] == [i % 5 for i in range(12)]  # same frames, looped, in order
        assert p.timer.frames == 12
    rf, rs = vb.result_of(cs[0]), vb.result_of(cs[1])
    assert rf["fps"] > rs["fps"]
    assert rs["stages_ms"]["inference"]["p50"] >= 4.0
    assert set(rs["stages_ms"]) == {"capture", "inference", "compositing", "output", "total"}
    assert list(rs["stages_ms"])[-1] == "total"
    table = vb.format_table([rf, rs])
    assert "fast" in table and "slow" in table
    md = vb.format_markdown([rf, rs])
    assert md.count("\n") == 3 and md.startswith("| engine |")


def test_paced_run_is_held_to_the_rate():
    c = vb.Contender("p", FakeProcessor(0.1), ListSink())
    vb.measure([c], _frames(2), n_frames=10, warmup=0, block=10, pace_fps=100.0)
    r = vb.result_of(c)
    assert r["fps"] <= 105.0  # 10 frames at 100 FPS take >= 90 ms
    assert r["late_frames"] <= 2


def test_null_vcam_sink_checks_and_accepts_frames():
    sink = vb.null_vcam_sink(32, 24, 30)
    sink.write(np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(ValueError):
        sink.write(np.zeros((10, 10, 3), np.uint8))
    sink.close()


def test_machine_info_names_the_cpu():
    m = vb.machine_info(threads=3)
    assert m["cpu"] and m["logical_cores"] >= 1 and m["engine_threads"] == 3


def test_outside_inference_is_each_frames_total_minus_its_inference():
    from vbg.bench import outside_inference
    from vbg.timing import StageTimer

    t = StageTimer()
    for pre, inf, comp in ((1.0, 5.0, 2.0), (2.0, 9.0, 1.0), (1.0, 4.0, 1.0)):
        t.add("preprocess", pre)
        t.add("inference", inf)
        t.add("compositing", comp)
        t.end_frame()
    got = outside_inference(t)
    assert got["p50"] == 3.0 and got["n"] == 3
    t.add("preprocess", 1.0)  # a frame without inference: no per-frame pairing
    t.end_frame()
    assert outside_inference(t) is None
