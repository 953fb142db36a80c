"""The 2-minute soak: planned camera faults, no gap, no leak (the hour-long run is
`python -m benchmarks.soak --minutes 60`)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_two_minute_soak(tiny_card):
    from benchmarks.soak import soak

    r = soak(2.0, str(tiny_card), fps=20.0, cycle=30.0)
    assert r["outages"] >= 4 and r["reconnects"] >= 4
    # The loop's own gaps stay under two frame intervals (the benchmark's exit status is
    # strict about it); on a shared CI machine the OS may deschedule the process now and
    # then, so a couple of longer gaps out of ~2400 frames are tolerated here.
    print({k: r[k] for k in ("longest_gap_ms", "gaps_over_limit", "long_gaps_at_s")})
    assert r["gaps_over_limit"] <= 2, r
    assert r["longest_gap_ms"] <= 4 * r["gap_limit_ms"] / 2, r
    assert r["frames_delivered"] >= 0.9 * 20 * 120
    assert r["threads_end"] <= r["threads_start"] + 1  # an abandoned stalled reader at most
    assert r["open_files_end"] <= r["open_files_start"] + 2
    assert r["rss_mb_end"] < r["rss_mb_warm"] + 50
