"""The per-frame hot path outside the network: it allocates nothing per frame, and the guide
taken from the preprocessed image gives the matte the full-frame shrink gave."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import cv2
import numpy as np

from vbg.backgrounds import BackgroundSpec
from vbg.bench import synthetic_frames
from vbg.card import InputSpec
from vbg.compose import Compositor
from vbg.guided import GuidedUpsampler
from vbg.refine import Refiner
from vbg.segmenter import Segmenter

H, W = 720, 1280


class _NoEngine:
    name = "none"


def _card():
    return SimpleNamespace(input=InputSpec(160, 288))  # all that preprocessing reads


def _prob(frame: np.ndarray, h: int = 160, w: int = 288) -> np.ndarray:
    """A smooth probability of the figure drawn by synthetic_frames (its skin and shirt)."""
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    person = (np.abs(small - (120, 150, 200)).sum(-1) < 60) | (
        np.abs(small - (150, 60, 40)).sum(-1) < 60
    )
    return cv2.GaussianBlur(person.astype(np.float32), (5, 5), 0)


def test_hot_path_allocates_nothing_per_frame():
    frames = synthetic_frames(W, H, count=3)
    seg = Segmenter(_card(), _NoEngine())
    refiner = Refiner()
    comp = Compositor(BackgroundSpec(kind="blur", blur_ksize=31), (H, W))
    prob = _prob(frames[0])
    # The person moves and grows after the first frame: the band's box (vbg.refine) gets
    # bigger, which must not allocate either.
    later = [np.roll(prob, 40, axis=1), cv2.dilate(prob, np.ones((15, 15), np.uint8))]

    def frame(f: np.ndarray, p: np.ndarray) -> None:
        seg.prepare(f)
        alpha = refiner(p, f, seg.small)
        comp(f, alpha)

    frame(frames[0], prob)  # the first frame of a size makes the buffers
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for f, p in zip(frames[1:], later, strict=True):
            frame(f, p)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Not one array: a model-resolution float map alone is 184 kB, a frame 2.7 MB; what is
    # left is the interpreter's own bookkeeping of a few calls and the speck filter's
    # per-component tables from OpenCV (~40 bytes a component; this synthetic probability
    # has 45 specks and holes).
    assert peak - before < 8192
    assert current - before < 1024


def test_small_guide_from_preprocessing_matches_the_full_frame_shrink():
    frames = synthetic_frames(W, H, count=2)
    seg = Segmenter(_card(), _NoEngine())
    diffs = []
    for f in frames:
        seg.prepare(f)
        prob = _prob(f)
        gray = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
        old = GuidedUpsampler()(prob, gray).copy()  # the full guide shrunk (INTER_AREA)
        small = cv2.cvtColor(seg.small, cv2.COLOR_BGR2GRAY)
        new = GuidedUpsampler()(prob, gray, small)
        d = np.abs(new.astype(int) - old)
        diffs.append(d)
        # The same matte: same pixels on either side of 0.5, a fraction of a level on average.
        assert ((new >= 128) != (old >= 128)).mean() < 0.002
    d = np.concatenate([x.ravel() for x in diffs])
    assert d.mean() < 0.5 and np.percentile(d, 99.9) <= 16


def test_refiner_uses_the_small_image_only_when_it_fits():
    f = synthetic_frames(W, H, count=1)[0]
    prob = _prob(f)
    gray = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
    plain = GuidedUpsampler()(prob, gray).copy()
    # Only the upsampling: the clean-up stages (vbg.cleanup) are tested on their own.
    r = Refiner(bounds=False, min_area=0, max_hole=0)
    wrong = np.zeros((10, 10, 3), np.uint8)  # not the probability's size: ignored
    np.testing.assert_array_equal(r(prob, f, wrong), plain)
    black = np.zeros((160, 288, 3), np.uint8)  # a flat guide: a different matte
    assert not np.array_equal(r(prob, f, black), plain)
