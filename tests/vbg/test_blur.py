from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.backgrounds import parse_background
from vbg.blur import HaloFreeBlur
from vbg.compose import Compositor


def _scene(h=180, w=320):
    """A red 'person' disc on a green-and-blue striped background, a hard matte."""
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, :, 1] = 160  # green background
    frame[:, ::16, 0] = 200  # with blue stripes, so the blur has texture to average
    alpha = np.zeros((h, w), np.uint8)
    cv2.circle(alpha, (w // 2, h // 2), h // 3, 255, -1)
    frame[alpha > 0] = (0, 0, 230)  # red person (BGR)
    return frame, alpha


@pytest.mark.parametrize("k", [4, 21, 61])
def test_no_person_colour_in_the_blurred_background(k):
    frame, alpha = _scene()
    bg = HaloFreeBlur(k)(frame, alpha)
    ring = alpha == 0
    red = bg[..., 2][ring]
    # Measured: the red channel in the background area (truth 0) stays at 0-1 levels...
    assert red.max() <= 2, red.max()
    # ...where the plain blur of the whole frame smears the person far into it.
    plain = cv2.GaussianBlur(frame, (k | 1, k | 1), 0)
    assert plain[..., 2][ring].max() > 40
    # The background keeps its own colour: green stays green next to the person.
    assert abs(float(bg[..., 1][ring].mean()) - 160) < 3


def test_compositor_blur_uses_the_halo_free_background():
    frame, alpha = _scene()
    comp = Compositor(parse_background("blur:31"), frame.shape[:2])
    out = comp(frame, alpha)
    assert out[..., 2][alpha == 0].max() <= 2
    np.testing.assert_array_equal(out[alpha == 255], frame[alpha == 255])


def test_bad_sizes():
    with pytest.raises(ValueError):
        HaloFreeBlur(0)
    frame, alpha = _scene()
    with pytest.raises(ValueError):
        HaloFreeBlur(5)(frame[:10], alpha)
