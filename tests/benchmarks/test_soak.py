"""The 2-minute soak: planned camera faults, no gap, no leak (the hour-long run is
`python -m benchmarks.soak --minutes 60`). Run it with `pytest -m soak`."""

from __future__ import annotations

import pytest

# Not in the default run (pyproject's addopts): `pytest -m soak` runs it.
pytestmark = [pytest.mark.slow, pytest.mark.soak]


def test_two_minute_soak(tiny_card):
    from benchmarks.soak import soak

    r = soak(2.0, str(tiny_card), fps=20.0, cycle=30.0)
    assert r["outages"] >= 4 and r["reconnects"] >= 4
    # The loop's own gaps stay under two frame intervals (the benchmark's exit status is
    # strict about it, and tests/vbg/test_live_outage.py asserts it for each kind of fault);
    # on a loaded shared machine the OS deschedules the process now and then (on a 2-core
    # box at load 12: 7 gaps of 100-127 ms in 2400 frames, none tied to a fault), so this
    # long run tolerates a few, never a frozen call.
    print(r)
    assert r["gaps_over_limit"] <= 0.005 * r["frames_delivered"], r
    assert r["longest_gap_ms"] <= 2 * r["gap_limit_ms"], r
    assert r["frames_delivered"] >= 0.9 * 20 * 120
    assert r["threads_end"] <= r["threads_start"] + 1  # an abandoned stalled reader at most
    assert r["open_files_end"] <= r["open_files_start"] + 2
    assert r["rss_mb_end"] < r["rss_mb_warm"] + 50
