"""Edge colour decontamination: the soft edge takes the person's colour, not the old wall's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.edges import EdgeColors

SKIN = (120, 150, 200)  # BGR
WALL = (250, 250, 250)


def _edge_scene():
    frame = np.empty((40, 60, 3), np.uint8)
    frame[:, :30] = SKIN
    frame[:, 30:] = WALL
    alpha = np.zeros((40, 60), np.uint8)
    alpha[:, :26] = 255
    alpha[:, 26:34] = np.linspace(240, 20, 8).astype(np.uint8)  # the soft edge
    return frame, alpha


def test_soft_edge_gets_the_persons_colour():
    frame, alpha = _edge_scene()
    out = EdgeColors(radius=8)(frame, alpha)
    # Half-transparent pixels that showed the white wall now carry the skin colour.
    for x in range(30, 34):
        assert np.abs(out[20, x].astype(int) - SKIN).max() <= 1, x
    # Sure person and sure background are left alone.
    assert (out[:, :26] == frame[:, :26]).all()
    assert (out[:, 34:] == frame[:, 34:]).all()


def test_no_sure_foreground_nearby_keeps_the_pixel():
    frame, alpha = _edge_scene()
    alpha[:] = 100  # nothing is sure: nothing to borrow colours from
    out = EdgeColors(radius=2)(frame, alpha)
    assert (out == frame).all()


def test_buffers_reused_and_inputs_checked():
    frame, alpha = _edge_scene()
    e = EdgeColors()
    assert e(frame, alpha) is e(frame, alpha)
    with pytest.raises(TypeError):
        e(frame.astype(np.float32), alpha)
    with pytest.raises(ValueError):
        e(frame[:, :10], alpha)
    with pytest.raises(ValueError):
        EdgeColors(radius=0)


def test_process_uses_it_and_run_does_not(tiny_card):
    from vbg.pipeline import build_processor

    live = build_processor(tiny_card, engine="onnxruntime", background="blur")
    offline = build_processor(
        tiny_card, engine="onnxruntime", background="blur", decontaminate=True
    )
    try:
        assert live.edge_colors is None and offline.edge_colors is not None
        frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        assert offline.process(frame).shape == frame.shape
    finally:
        live.close()
        offline.close()


def test_mean_at_reduced_resolution_allocates_nothing_per_frame():
    import tracemalloc

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    alpha = np.zeros((180, 320), np.uint8)
    alpha[:, :150] = 255
    alpha[:, 150:170] = np.linspace(240, 10, 20).astype(np.uint8)
    e = EdgeColors(radius=8)
    assert e.factor == 4
    e(frame, alpha)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = e(frame, alpha)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - before < 4096  # no array (the small float sums alone are 43 kB)
    # The band took the sure pixels' mean colour (random colours: mid-grey on average).
    assert np.abs(out[:, 152:160].astype(float).mean() - frame[:, :150].mean()) < 4


def test_decontamination_over_the_band_box_equals_the_whole_frame(monkeypatch):
    """The upsampled maps are made over the soft band's bounding box only; the result must
    be what the whole-frame upsampling gives, to the bit."""
    from vbg.edges import EdgeColors

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(frame, (5, 5), 0)
    alpha = np.zeros((240, 320), np.uint8)
    cv2.ellipse(alpha, (200, 130), (50, 70), 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (21, 21), 0)
    boxed = EdgeColors()(frame, alpha).copy()
    whole = EdgeColors()
    monkeypatch.setattr(
        whole, "_band_box", lambda band, hw: ((0, 240, 0, 320), (0, hw[0], 0, hw[1]))
    )
    assert np.array_equal(boxed, whole(frame, alpha))
    assert (boxed != frame).any()
