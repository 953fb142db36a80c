from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.backgrounds import BackgroundSpec
from vbg.compose import Compositor
from vbg.harmonize import Harmonizer
from vbg.lightwrap import LightWrap


def _person(h=200, w=300):
    alpha = np.zeros((h, w), np.uint8)
    cv2.rectangle(alpha, (100, 40), (200, 199), 255, -1)
    alpha = cv2.GaussianBlur(alpha, (5, 5), 0)  # a soft outline, as the refiner makes
    frame = np.full((h, w, 3), (60, 70, 80), np.uint8)
    return frame, alpha


def test_light_wrap_changes_only_the_inner_edge_band():
    frame, alpha = _person()
    bg = np.full_like(frame, 250)  # a bright scene
    lw = LightWrap(strength=0.4, radius_frac=0.03)
    lw.set_background(bg)
    out = frame.copy()
    lw(out, alpha)
    changed = np.any(out != frame, axis=2)
    # Nothing outside the person, nothing deep inside it.
    assert not changed[alpha == 0].any()
    dist_in = cv2.distanceTransform((alpha > 0).astype(np.uint8), cv2.DIST_L2, 3)
    assert not changed[dist_in > 3 * 0.03 * 200 + 4].any()
    # The band just inside the outline is brightened toward the background.
    band = (alpha == 255) & (dist_in < 8)
    assert changed[band].mean() > 0.9
    assert out[band].mean() > frame[band].mean() + 10


def test_light_wrap_is_on_for_images_and_off_for_color_keys(tmp_path):
    frame, alpha = _person()
    path = tmp_path / "bright.png"
    cv2.imwrite(str(path), np.full((100, 150, 3), 240, np.uint8))
    spec = BackgroundSpec(kind="image", path=path)
    wrapped = Compositor(spec, frame.shape[:2])(frame, alpha).copy()
    plain = Compositor(spec, frame.shape[:2], light_wrap=False)(frame, alpha)
    edge = (alpha == 255) & (cv2.erode(alpha, np.ones((9, 9), np.uint8)) < 255)
    assert (wrapped[edge] > plain[edge]).mean() > 0.9
    np.testing.assert_array_equal(wrapped[alpha == 0], plain[alpha == 0])
    comp = Compositor(BackgroundSpec(kind="color", color_bgr=(64, 177, 0)), frame.shape[:2])
    out = comp(frame, alpha)
    # Chroma key: every background pixel is exactly the key colour.
    assert (out[alpha == 0] == (64, 177, 0)).all()
    np.testing.assert_array_equal(out[alpha == 255], frame[alpha == 255])


def test_harmonizer_applies_one_global_gain_toward_the_background():
    frame, alpha = _person()
    frame[...] = (40, 80, 160)  # a warm-lit person (BGR: red-heavy)
    h = Harmonizer(strength=0.5, max_gain=2.0)
    h.set_background(np.full_like(frame, (160, 90, 50)))  # a cold night scene
    out = h(frame, alpha).astype(np.float64)
    g = h.gains
    # Global: every pixel is the frame times the same per-channel gains.
    np.testing.assert_allclose(out, np.clip(np.round(frame * g), 0, 255), atol=1)
    # Toward the background: blue up, red down.
    assert g[0] > 1.2 and g[2] < 0.8
    # Smoothed over time: a sudden change of the target moves the gains by 10 % only.
    before = h.gains.copy()
    h(np.full_like(frame, (160, 90, 50)), alpha)
    assert np.all(np.abs(h.gains - before) < 0.2 * np.abs(before - 1.0) + 1e-9)


def test_bad_options():
    with pytest.raises(ValueError):
        LightWrap(strength=0)
    with pytest.raises(ValueError):
        Harmonizer(strength=2)
    with pytest.raises(RuntimeError):
        LightWrap()(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8))
