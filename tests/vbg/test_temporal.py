from __future__ import annotations

import numpy as np
import pytest

from vbg.temporal import TemporalConfig, TemporalSmoother

NO_MORPH = {"open_px": 0, "close_px": 0}
EMA = {"mode": "ema", **NO_MORPH}


def _flat(v, shape=(8, 10)):
    return np.full(shape, v, np.float32)


def test_ema_by_hand():
    sm = TemporalSmoother(TemporalConfig(ema=0.25, **EMA))
    np.testing.assert_allclose(sm(_flat(0.2)), 0.2)  # first frame: the frame itself
    # 0.75 * 0.2 + 0.25 * 0.4 = 0.25
    np.testing.assert_allclose(sm(_flat(0.4)), 0.25, rtol=1e-6)
    # 0.75 * 0.25 + 0.25 * 0.4 = 0.2875
    np.testing.assert_allclose(sm(_flat(0.4)), 0.2875, rtol=1e-6)
    assert sm.frames == 3
    np.testing.assert_allclose(sm.state, 0.2875, rtol=1e-6)


def test_ema_one_means_no_smoothing():
    sm = TemporalSmoother(TemporalConfig(ema=1.0, **EMA))
    sm(_flat(0.1))
    np.testing.assert_allclose(sm(_flat(0.3)), 0.3)


def test_output_is_not_the_state():
    sm = TemporalSmoother(TemporalConfig(**NO_MORPH))
    out = sm(_flat(0.2))
    out[...] = 7
    np.testing.assert_allclose(sm.state, 0.2)


def test_reset_forgets():
    sm = TemporalSmoother(TemporalConfig(ema=0.5, **NO_MORPH))
    sm(_flat(0.0))
    sm.reset()
    assert sm.state is None and sm.frames == 0
    np.testing.assert_allclose(sm(_flat(0.3)), 0.3)


def test_scene_cut_resets():
    sm = TemporalSmoother(TemporalConfig(ema=0.5, cut_threshold=0.35, **EMA))
    sm(_flat(0.0))
    # Mean change 0.3 < 0.35: ordinary motion, blended.
    np.testing.assert_allclose(sm(_flat(0.3)), 0.15, rtol=1e-6)
    assert sm.cuts == 0
    # Mean change |1 - 0.15| = 0.85 > 0.35: a new scene, taken as is.
    np.testing.assert_allclose(sm(_flat(1.0)), 1.0)
    assert sm.cuts == 1 and sm.frames == 1
    assert sm.last_change == pytest.approx(0.85, rel=1e-5)


def test_cut_measured_on_the_mean_not_the_max():
    sm = TemporalSmoother(TemporalConfig(ema=0.5, **EMA))
    sm(_flat(0.0))
    p = _flat(0.0)
    p[:2, :2] = 1.0  # a hand moving in: 4 of 80 pixels change fully
    out = sm(p)
    assert sm.cuts == 0
    np.testing.assert_allclose(out[0, 0], 0.5)


def test_new_size_starts_over():
    sm = TemporalSmoother(TemporalConfig(**NO_MORPH))
    sm(_flat(0.0, (8, 10)))
    np.testing.assert_allclose(sm(_flat(0.3, (10, 8))), 0.3)


def test_open_removes_a_one_pixel_speck_and_close_fills_a_hole():
    sm = TemporalSmoother(TemporalConfig(ema=1.0, open_px=1, close_px=2))
    p = np.zeros((31, 31), np.float32)
    p[3, 3] = 1.0  # false-positive speck
    p[10:25, 10:25] = 1.0  # the person
    p[17, 17] = 0.0  # a pinhole in them
    out = sm(p)
    assert out[3, 3] == 0.0
    assert out[17, 17] == 1.0
    assert out[12, 12] == 1.0 and out[10, 17] == 1.0  # the body survives, edges included
    assert out[0, 30] == 0.0


def test_morphology_does_not_feed_back_into_state():
    sm = TemporalSmoother(TemporalConfig(ema=0.5, open_px=1, close_px=0))
    p = np.zeros((9, 9), np.float32)
    p[4, 4] = 1.0
    sm(p)
    assert sm.state[4, 4] == 1.0  # the EMA keeps the raw value; only the output is opened


def test_config_validation():
    with pytest.raises(ValueError):
        TemporalConfig(ema=0.0)
    with pytest.raises(ValueError):
        TemporalConfig(open_px=-1)
    with pytest.raises(ValueError):
        TemporalSmoother()(np.zeros((2, 2, 2), np.float32))


# --- adaptive mode ----------------------------------------------------------------------


def _noisy_still(rng, n, shape=(24, 32)):
    base = np.zeros(shape, np.float32)
    base[:, : shape[1] // 2] = 1.0
    return base, [
        np.clip(base + rng.normal(0, 0.08, shape), 0, 1).astype(np.float32) for _ in range(n)
    ]


def test_adaptive_converges_on_a_still_input_and_damps_jitter():
    rng = np.random.default_rng(0)
    base, frames = _noisy_still(rng, 40)
    sm = TemporalSmoother(TemporalConfig(**NO_MORPH))
    outs = [sm(f).copy() for f in frames]
    # Converged: the output stays near the still truth...
    assert np.abs(outs[-1] - base).mean() < 0.04
    # ...and flickers far less than the input does (frame-to-frame change).
    d_in = np.mean([np.abs(frames[i] - frames[i - 1]).mean() for i in range(20, 40)])
    d_out = np.mean([np.abs(outs[i] - outs[i - 1]).mean() for i in range(20, 40)])
    assert d_out < 0.4 * d_in
    # A constant input is a fixed point.
    sm.reset()
    for _ in range(5):
        out = sm(base)
    np.testing.assert_allclose(out, base, atol=1e-6)


def _square(x, shape=(24, 48)):
    m = np.zeros(shape, np.float32)
    m[6:18, x : x + 10] = 1.0
    return m


def test_adaptive_follows_a_moving_input_within_one_frame_where_ema_lags():
    # A person moving 3 px a frame: the adaptive filter's thresholded output matches the
    # input within k=1 frame; the plain EMA at its default weight trails a ghost.
    K = 1
    ad = TemporalSmoother(TemporalConfig(**NO_MORPH))
    ema = TemporalSmoother(TemporalConfig(**EMA))
    errs_ad, errs_ema = [], []
    for i in range(10):
        p = _square(3 * i)
        a, e = ad(p), ema(p)
        if i >= K:
            errs_ad.append(np.count_nonzero((a >= 0.5) != (p >= 0.5)))
            errs_ema.append(np.count_nonzero((e >= 0.5) != (p >= 0.5)) + np.abs(e - p).sum())
    assert max(errs_ad) == 0
    assert min(errs_ema) > 0


def test_hysteresis_keeps_pixels_near_the_threshold_on_their_side():
    cfg = TemporalConfig(still_weight=1.0, hysteresis=0.1, **NO_MORPH)  # no averaging
    sm = TemporalSmoother(cfg)
    assert sm(_flat(0.6))[0, 0] >= 0.5  # (small steps: a big jump would be a scene cut)
    # 0.45 is within 2/3 h of 0.5: stays person; 0.40 is beyond: becomes background.
    assert sm(_flat(0.45))[0, 0] >= 0.5
    assert sm(_flat(0.40))[0, 0] < 0.5
    assert sm(_flat(0.55))[0, 0] < 0.5  # and now it stays background near 0.5
    # Far from 0.5 nothing is shifted.
    np.testing.assert_allclose(sm(_flat(0.75)), 0.75, atol=1e-6)


def test_adaptive_motion_uses_the_frame_and_reset_forgets_it():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (48, 96, 3), dtype=np.uint8)
    sm = TemporalSmoother(TemporalConfig(motion=True, **NO_MORPH))
    out = sm(_square(0), frame)
    assert out.shape == (24, 48) and sm._gray is not None
    sm.reset()
    assert sm._gray is None and sm.state is None and sm.side is None


def test_bad_adaptive_options():
    for kw in ({"mode": "median"}, {"still_weight": 0.0}, {"move_diff": 0.0}, {"hysteresis": 0.5}):
        with pytest.raises(ValueError):
            TemporalConfig(**kw)
