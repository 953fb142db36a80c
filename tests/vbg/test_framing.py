"""Framing: the landmark (focal point) lands beside the person, not behind them."""

from __future__ import annotations

import numpy as np
import pytest

from vbg.backgrounds import bundled_dir, list_backgrounds, parse_background
from vbg.compose import Compositor
from vbg.framing import Framing, fit_background, load_focal_points, person_box


def _marked(h: int = 270, w: int = 480, fx: float = 0.5, fy: float = 0.4) -> np.ndarray:
    """A grey image with a one-pixel-wide red column (the landmark) at x = fx."""
    img = np.full((h, w, 3), 120, np.uint8)
    img[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]  # a gradient: no symmetry
    img[:, int(fx * w)] = (0, 0, 255)
    return img


def _landmark_x(out: np.ndarray) -> float:
    red = (out[:, :, 2] > 200) & (out[:, :, 1] < 60)
    cols = np.flatnonzero(red.any(axis=0))
    assert cols.size, "the landmark left the frame"
    return float(cols.mean()) / out.shape[1]


def test_every_bundled_background_has_a_focal_point():
    points = load_focal_points(bundled_dir())
    names = {b.name for b in list_backgrounds()}
    assert names == set(points)
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in points.values())
    assert parse_background("paris-eiffel-tower").focal == points["paris-eiffel-tower"]


@pytest.mark.parametrize("box", [(0.3, 0.6), (0.4, 0.7), (0.1, 0.45), (0.55, 0.9)])
@pytest.mark.parametrize("align", ["auto", "left", "right"])
def test_focal_point_lands_outside_the_person_box(box, align):
    img = _marked()
    out = fit_background(img, 180, 320, focal=(0.5, 0.4), framing=Framing(align), box=box)
    assert out.shape == (180, 320, 3)
    x = _landmark_x(out)
    assert not box[0] <= x <= box[1], (x, box)
    if align == "left":
        assert x < box[0]
    if align == "right":
        assert x > box[1]
    if align == "auto":  # the side with more room
        assert (x < box[0]) == (box[0] > 1 - box[1])


def test_center_is_the_plain_cover_crop_and_zoom_scales():
    img = _marked()
    out = fit_background(img, 180, 320, focal=(0.5, 0.4), framing=Framing("center"))
    assert abs(_landmark_x(out) - 0.5) < 0.01
    z = fit_background(img, 180, 320, focal=(0.5, 0.4), framing=Framing("center", zoom=2.0))
    # Zoom 2: the frame shows the middle half of the image's gradient.
    assert int(z[:, 0, 0].mean()) > 50 and int(z[:, -1, 0].mean()) < 205


def test_user_image_without_focal_point_stays_centred_on_auto():
    img = _marked()
    out = fit_background(img, 180, 320, framing=Framing("auto"), box=(0.3, 0.6))
    assert abs(_landmark_x(out) - 0.5) < 0.01
    # Asking for a side uses the image centre as the focal point.
    out = fit_background(img, 180, 320, framing=Framing("left"), box=(0.3, 0.6))
    assert _landmark_x(out) < 0.3


def test_bad_framing_values():
    with pytest.raises(ValueError):
        Framing("top")
    with pytest.raises(ValueError):
        Framing(zoom=0.5)


def test_person_box_from_a_matte():
    a = np.zeros((100, 200), np.uint8)
    assert person_box(a) is None
    a[10:100, 120:170] = 255
    x0, x1 = person_box(a)
    assert abs(x0 - 0.6) < 0.02 and abs(x1 - 0.85) < 0.02


def test_compositor_auto_measures_the_person_on_the_first_frame(tmp_path):
    import cv2

    from vbg.backgrounds import BackgroundSpec

    path = tmp_path / "bg.png"
    cv2.imwrite(str(path), _marked())
    spec = BackgroundSpec(kind="image", path=path, focal=(0.5, 0.4))
    comp = Compositor(spec, (180, 320), framing=Framing("auto"))
    alpha = np.zeros((180, 320), np.uint8)
    alpha[20:, 20:140] = 255  # the person on the left: the landmark goes right
    frame = np.zeros((180, 320, 3), np.uint8)
    comp(frame, alpha)
    assert comp.person_box is not None
    assert _landmark_x(comp.background) > comp.person_box[1]
