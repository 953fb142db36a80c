from __future__ import annotations

import numpy as np
import pytest

from vbg.temporal import TemporalConfig, TemporalSmoother

NO_MORPH = {"open_px": 0, "close_px": 0}


def _flat(v, shape=(8, 10)):
    return np.full(shape, v, np.float32)


def test_ema_by_hand():
    sm = TemporalSmoother(TemporalConfig(ema=0.25, **NO_MORPH))
    np.testing.assert_allclose(sm(_flat(0.2)), 0.2)  # first frame: the frame itself
    # 0.75 * 0.2 + 0.25 * 0.4 = 0.25
    np.testing.assert_allclose(sm(_flat(0.4)), 0.25, rtol=1e-6)
    # 0.75 * 0.25 + 0.25 * 0.4 = 0.2875
    np.testing.assert_allclose(sm(_flat(0.4)), 0.2875, rtol=1e-6)
    assert sm.frames == 3
    np.testing.assert_allclose(sm.state, 0.2875, rtol=1e-6)


def test_ema_one_means_no_smoothing():
    sm = TemporalSmoother(TemporalConfig(ema=1.0, **NO_MORPH))
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
    sm = TemporalSmoother(TemporalConfig(ema=0.5, cut_threshold=0.35, **NO_MORPH))
    sm(_flat(0.0))
    # Mean change 0.3 < 0.35: ordinary motion, blended.
    np.testing.assert_allclose(sm(_flat(0.3)), 0.15, rtol=1e-6)
    assert sm.cuts == 0
    # Mean change |1 - 0.15| = 0.85 > 0.35: a new scene, taken as is.
    np.testing.assert_allclose(sm(_flat(1.0)), 1.0)
    assert sm.cuts == 1 and sm.frames == 1
    assert sm.last_change == pytest.approx(0.85, rel=1e-5)


def test_cut_measured_on_the_mean_not_the_max():
    sm = TemporalSmoother(TemporalConfig(ema=0.5, **NO_MORPH))
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
