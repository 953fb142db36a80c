from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from vbg import VbgError
from vbg.card import (
    CARD_FORMAT,
    InputSpec,
    ModelCard,
    OutputSpec,
    card_from_dict,
    load_card,
    sha256_of,
)


def _card_dict(**over):
    d = {
        "name": "m",
        "architecture": "Unet",
        "encoder": "mobilenet_v2",
        "input": {"height": 160, "width": 288},
        "files": {"onnx": "m.onnx"},
    }
    d.update(over)
    return d


@pytest.mark.parametrize(
    ("frame", "want"),
    [
        ((720, 1280), (160, 288)),  # 16:9 lands exactly on the nominal size
        ((800, 600), (256, 192)),  # portrait: s = sqrt(46080/480000) = 0.3098
        ((480, 640), (192, 256)),  # 4:3: s = 0.3873, 185.9 -> 192, 247.9 -> 256
        ((10, 10), (224, 224)),  # tiny frame is enlarged to the pixel budget
    ],
)
def test_size_for(frame, want):
    spec = InputSpec(height=160, width=288)
    h, w = spec.size_for(*frame)
    # Recompute by hand: scale to ~46080 px, round each side to a multiple of 32.
    s = (46080 / (frame[0] * frame[1])) ** 0.5
    assert (h, w) == (round(frame[0] * s / 32) * 32, round(frame[1] * s / 32) * 32)
    assert (h, w) == want
    assert h % 32 == 0 and w % 32 == 0


def test_size_for_stretch_and_minimum():
    assert InputSpec(height=100, width=50, fit="stretch").size_for(720, 1280) == (100, 50)
    assert InputSpec(height=32, width=32).size_for(10, 1000)[0] == 32  # never below `multiple`


def test_round_trip(tmp_path):
    card = ModelCard(
        name="m",
        architecture="Unet",
        encoder="e",
        input=InputSpec(height=64, width=96, color_order="BGR"),
        output=OutputSpec(kind="probability", threshold=0.4),
        files={"onnx": "m.onnx"},
        decoder_channels=(16, 8),
        metrics={"test": {"iou": 0.9}},
    )
    p = card.save(tmp_path / "m.json")
    d = json.loads(p.read_text())
    assert d["format"] == CARD_FORMAT and "path" not in d
    back = load_card(p)
    assert back.path == p.resolve()
    assert dataclasses.replace(back, path=None) == card
    assert not (tmp_path / "m.json.tmp").exists()


def test_file_and_verify(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert sha256_of(tmp_path / "m.onnx") == digest
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_card_dict(sha256={"m.onnx": digest})))
    card = load_card(p)
    assert card.verify_file("onnx") == (tmp_path / "m.onnx").resolve()
    (tmp_path / "m.onnx").write_bytes(b"abd")
    with pytest.raises(VbgError, match="does not match its card"):
        card.verify_file("onnx")
    with pytest.raises(VbgError, match="names no 'torch' file"):
        card.file("torch")
    (tmp_path / "m.onnx").unlink()
    with pytest.raises(VbgError, match="does not exist"):
        card.file("onnx")


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"input": {"height": 1, "width": 1, "fit": "crop"}}, "input.fit"),
        ({"input": {"height": 1, "width": 1, "color_order": "YUV"}}, "color_order"),
        ({"input": {"height": 1, "width": 1, "mean": [0.5]}}, "mean and input.std"),
        ({"output": {"kind": "mask"}}, "output.kind"),
        ({"format": "other/9"}, "unknown card format"),
        ({"input": {"height": 1}}, "invalid model card"),
        ({"input": {"height": 1, "width": 1, "prior": "yes"}}, "input.prior"),
    ],
)
def test_invalid_cards(over, error):
    with pytest.raises(VbgError, match=error):
        card_from_dict(_card_dict(**over))


def test_missing_key_and_bad_json(tmp_path):
    d = _card_dict()
    del d["files"]
    with pytest.raises(VbgError, match="invalid model card"):
        card_from_dict(d)
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(VbgError, match="not valid JSON"):
        load_card(p)
    with pytest.raises(VbgError, match="does not exist"):
        load_card(tmp_path / "none.json")


def test_prior_card_round_trips_with_four_channels(tmp_path):
    card = card_from_dict(_card_dict(input={"height": 32, "width": 64, "prior": True}))
    assert card.input.prior and card.input.channels == 4
    again = card_from_dict(json.loads(json.dumps(card.to_dict())))
    assert again.input == card.input
    assert card_from_dict(_card_dict()).input.channels == 3


def test_mean_std_become_tuples():
    card = card_from_dict(
        _card_dict(input={"height": 8, "width": 8, "mean": [0, 0, 0], "std": [1, 1, 1]})
    )
    assert card.input.mean == (0.0, 0.0, 0.0) and isinstance(card.input.std, tuple)
