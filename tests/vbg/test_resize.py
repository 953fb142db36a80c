from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.resize import AreaShrinker, final_interpolation, halvings, shrink_area


def test_halvings_leave_less_than_2x_for_the_last_step():
    assert halvings((720, 1280), (160, 288)) == 2  # 320x180 -> 288x160 (1.1x)
    assert halvings((1080, 1920), (160, 288)) == 2  # 480x270 -> 288x160 (1.7x)
    assert halvings((540, 960), (160, 288)) == 1
    assert halvings((2160, 3840), (160, 288)) == 3
    assert halvings((720, 1280), (180, 320)) == 2  # exact: nothing after the halvings
    assert halvings((721, 1280), (160, 288)) == 0  # odd side: no exact 2x
    assert final_interpolation((180, 320), (160, 288)) == cv2.INTER_LINEAR
    assert final_interpolation((721, 1280), (160, 288)) == cv2.INTER_AREA


@pytest.mark.parametrize(("shape", "size"), [((721, 1283), (160, 288)), ((100, 90), (40, 50))])
def test_one_step_area_when_no_halving(shape, size):
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert halvings(shape, size) == 0
    want = cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(shrink_area(img, size[::-1]), want)


def test_shrinker_reuses_its_buffers():
    img = np.random.default_rng(2).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    shrink, dst = AreaShrinker(), np.empty((160, 288, 3), np.uint8)
    shrink(img, (288, 160), dst)
    steps = [id(s) for s in shrink._steps]
    assert shrink(img, (288, 160), dst) is dst and [id(s) for s in shrink._steps] == steps
    np.testing.assert_array_equal(dst, shrink_area(img, (288, 160)))


def test_close_to_one_step_area_and_flat_stays_flat():
    rng = np.random.default_rng(0)
    blotches = rng.integers(0, 256, (18, 32, 3), dtype=np.uint8)
    img = cv2.resize(blotches, (1280, 720), interpolation=cv2.INTER_CUBIC)
    got = shrink_area(img, (288, 160))
    want = cv2.resize(img, (288, 160), interpolation=cv2.INTER_AREA)
    assert got.shape == want.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want)
    assert diff.mean() < 0.5 and diff.max() <= 8
    flat = np.full((720, 1280, 3), 77, np.uint8)
    np.testing.assert_array_equal(shrink_area(flat, (288, 160)), 77)


def test_writes_into_dst_and_keeps_the_source():
    img = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    before = img.copy()
    dst = np.empty((180, 320, 3), np.uint8)
    assert shrink_area(img, (320, 180), dst=dst) is dst
    np.testing.assert_array_equal(dst, shrink_area(img, (320, 180)))
    np.testing.assert_array_equal(img, before)
    # 4x by two exact halvings is a 4x4 box mean (up to the rounding of the first step).
    box = img.reshape(180, 4, 320, 4, 3).mean(axis=(1, 3))
    assert np.abs(dst - box).max() <= 1.0
