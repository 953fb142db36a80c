"""The fast guided filter snaps the upsampled person edge to the image's own edge."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.guided import GuidedUpsampler


def _scene(H: int = 240, W: int = 320, edge_x: int = 157):
    """A bright person (left of edge_x) on a dark wall, and the blurry low-resolution
    probability a network would give for it (8x smaller, edge smeared over ~3 model px)."""
    guide = np.full((H, W), 40, np.uint8)
    guide[:, :edge_x] = 200
    truth = np.zeros((H, W), bool)
    truth[:, :edge_x] = True
    small = cv2.resize(truth.astype(np.float32), (W // 8, H // 8), interpolation=cv2.INTER_AREA)
    prob = cv2.GaussianBlur(small, (5, 5), 1.2)
    return guide, truth, prob.astype(np.float32)


def test_edge_follows_the_guide_better_than_bilinear():
    guide, truth, prob = _scene()
    H, W = guide.shape
    bilinear = cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR)
    alpha = GuidedUpsampler()(prob, guide)
    assert alpha.shape == (H, W) and alpha.dtype == np.uint8
    err_bilinear = np.abs(bilinear * 255 - truth * 255.0).mean()
    err_guided = np.abs(alpha.astype(np.float32) - truth * 255.0).mean()
    assert err_guided < 0.9 * err_bilinear
    # The matte's steepest step sits exactly on the image edge and is sharp; bilinear
    # spreads the same step over ~20 frame pixels.
    row = alpha[H // 2].astype(int)
    steps = np.abs(np.diff(row))
    assert int(np.argmax(steps)) + 1 == 157
    assert steps.max() > 100
    assert np.abs(np.diff(bilinear[H // 2] * 255)).max() < 15


def test_flat_guide_keeps_the_networks_probability():
    # With no image contrast, a = 0 and the output is the locally averaged probability.
    _, _, prob = _scene()
    guide = np.full((240, 320), 128, np.uint8)
    alpha = GuidedUpsampler()(prob, guide).astype(np.float32) / 255
    ref = cv2.resize(
        cv2.blur(
            cv2.blur(prob, (5, 5), borderType=cv2.BORDER_REFLECT),
            (5, 5),
            borderType=cv2.BORDER_REFLECT,
        ),
        (320, 240),
    )
    assert np.abs(alpha - ref).max() < 0.02


def test_buffers_are_reused_and_inputs_checked():
    guide, _, prob = _scene()
    g = GuidedUpsampler()
    first = g(prob, guide)
    assert g(prob, guide) is first  # no full-frame allocation per frame
    with pytest.raises(TypeError):
        g(prob, guide.astype(np.float32))
    with pytest.raises(ValueError):
        g(prob[None], guide)
    with pytest.raises(ValueError):
        GuidedUpsampler(radius=0)
