from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from vbg import VbgError
from vbg.refine import Refiner, densecrf_prob, prob_to_frame


def test_prob_to_frame_bilinear():
    prob = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    up = prob_to_frame(prob, (4, 8))
    assert up.shape == (4, 8) and up.dtype == np.float32
    # Half-pixel-centre bilinear: outer columns keep the end values, the middle interpolates.
    np.testing.assert_allclose(up[:, 0], 0.0)
    np.testing.assert_allclose(up[:, -1], 1.0)
    assert np.all(np.diff(up[0]) >= 0)
    assert (up > 0.5).sum() == 16  # thresholding keeps the right half


def test_prob_to_frame_same_size_is_a_copy_and_out_is_used():
    prob = np.random.default_rng(0).random((6, 9)).astype(np.float32)
    same = prob_to_frame(prob, (6, 9))
    np.testing.assert_array_equal(same, prob)
    assert same is not prob
    out = np.empty((12, 18), np.float32)
    assert prob_to_frame(prob, (12, 18), out=out) is out


def _frame(h=72, w=128):
    return np.zeros((h, w, 3), np.uint8)


def test_refiner_no_feather_is_upsampled_prob():
    r = Refiner(feather_px=0, bounds=False, min_area=0, max_hole=0)
    alpha = r(np.full((9, 16), 0.4, np.float32), _frame())
    assert alpha.shape == (72, 128) and alpha.dtype == np.uint8
    np.testing.assert_array_equal(alpha, 102)  # 0.4 * 255 = 102
    np.testing.assert_array_equal(r(np.ones((9, 16), np.float32), _frame()), 255)


def _step(h=9, w=16):
    p = np.zeros((h, w), np.float32)
    p[:, w // 2 :] = 1.0
    return p


def test_feather_softens_the_edge_only():
    hard = Refiner(feather_px=0)(_step(), _frame()).copy()
    soft = Refiner(feather_px=5)(_step(), _frame())
    partial_hard = np.count_nonzero((hard > 0) & (hard < 255))
    partial_soft = np.count_nonzero((soft > 0) & (soft < 255))
    assert partial_soft > partial_hard
    assert soft[:, :20].max() == 0 and soft[:, -20:].min() == 255  # far from the edge: unchanged


def test_refiner_reuses_its_buffer():
    r = Refiner()
    a = r(_step(), _frame())
    b = r(_step(), _frame())
    assert a is b
    c = r(_step(), _frame(90, 160))
    assert c.shape == (90, 160)


def test_refiner_rejects_bad_shapes():
    with pytest.raises(ValueError):
        Refiner()(np.zeros((2, 2, 2), np.float32), _frame())
    with pytest.raises(ValueError):
        Refiner()(np.zeros((9, 16), np.float32), np.zeros((72, 128), np.uint8))


def test_missing_pydensecrf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(VbgError, match=r"vbg\[crf\]"):
        Refiner(crf_every=5)
    Refiner(crf_every=0)  # off: no import at all


def _crf_scene():
    """A sharp bright square in the image, and a soft, too-wide guess of it in prob."""
    h, w = 48, 64
    img = np.full((h, w, 3), 40, np.uint8)
    img[12:36, 20:44] = 220
    prob = np.full((h, w), 0.35, np.float32)
    prob[8:40, 16:48] = 0.6  # 4 px too wide on every side
    prob[12:36, 20:44] = 0.65
    return img, prob


def test_densecrf_snaps_to_the_image():
    pytest.importorskip("pydensecrf.densecrf")
    img, prob = _crf_scene()
    q = densecrf_prob(prob, img, iters=5)
    assert q.shape == prob.shape and q.dtype == np.float32
    assert q[24, 32] > 0.9  # inside the square: sure person
    assert q[2, 2] < 0.1  # far background: sure background
    assert q[10, 32] < 0.5  # the too-wide band, dark in the image, goes to background


def test_crf_keyframes_and_reuse_between_them():
    pytest.importorskip("pydensecrf.densecrf")
    img, prob = _crf_scene()
    frame = cv2.resize(img, (128, 96), interpolation=cv2.INTER_NEAREST)
    plain = Refiner(feather_px=0)(prob, frame).copy()

    r = Refiner(feather_px=0, crf_every=3)
    key = r(prob, frame).copy()  # frame 0: keyframe
    assert r.keyframes == 1
    assert key[20, 64] < plain[20, 64]  # the too-wide band is pulled out of the person
    assert key[48, 64] > plain[48, 64]  # the inside is made surer

    # Frame 1, same probabilities: the keyframe's correction is reused in full.
    np.testing.assert_array_equal(r(prob, frame), key)
    assert r.keyframes == 1
    # Frame 2, the mask changed everywhere by more than the tolerance: correction dropped.
    moved = np.clip(prob + 0.3, 0, 1)
    np.testing.assert_array_equal(r(moved, frame), Refiner(feather_px=0)(moved, frame))
    # Frame 3 is the next keyframe.
    r(prob, frame)
    assert r.keyframes == 2
    r.reset()
    r(prob, frame)
    assert r.keyframes == 3
