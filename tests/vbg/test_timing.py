from __future__ import annotations

import pytest

from vbg.timing import STAGES, StageTimer, percentiles


def test_stages():
    assert STAGES == ("capture", "preprocess", "inference", "smoothing", "compositing", "output")


def test_percentiles_by_hand():
    p = percentiles([4.0, 1.0, 3.0, 2.0])
    assert p["p50"] == pytest.approx(2.5)  # mean of the two middle values
    assert p["p95"] == pytest.approx(1 + 0.95 * 3)  # linear between ranks: 3.85
    assert p["p99"] == pytest.approx(3.97)
    assert p["mean"] == pytest.approx(2.5) and p["n"] == 4
    assert percentiles([7.0], qs=(50,)) == {"p50": 7.0, "mean": 7.0, "n": 1}
    with pytest.raises(ValueError):
        percentiles([])


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_stage_timer_with_fake_clock():
    clock = FakeClock()
    timer = StageTimer(clock=clock)
    with timer.stage("inference"):
        clock.t += 0.010
    with timer.stage("compositing"):
        clock.t += 0.002
    timer.add("inference", 1.0)  # a stage may run twice in a frame: the times add up
    frame = timer.end_frame()
    assert frame["inference"] == pytest.approx(11.0)
    assert frame["compositing"] == pytest.approx(2.0)
    assert frame["total"] == pytest.approx(13.0)

    with timer.stage("inference"):
        clock.t += 0.020
    timer.end_frame()
    assert timer.frames == 2
    s = timer.summary()
    assert s["inference"]["p50"] == pytest.approx(15.5)
    assert s["inference"]["n"] == 2
    assert s["total"]["mean"] == pytest.approx((13.0 + 20.0) / 2)


def test_stage_recorded_even_when_it_raises():
    clock = FakeClock()
    timer = StageTimer(clock=clock)
    with pytest.raises(RuntimeError), timer.stage("output"):
        clock.t += 0.005
        raise RuntimeError("sink broke")
    assert timer.end_frame()["output"] == pytest.approx(5.0)


def test_empty_frame_and_reset():
    timer = StageTimer()
    assert timer.end_frame() == {}
    assert timer.frames == 0
    timer.add("capture", 1.0)
    timer.end_frame()
    timer.reset()
    assert timer.frames == 0 and timer.summary() == {}
