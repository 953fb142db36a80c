"""A tiny U-Net exported to ONNX with its model card, so runtime tests exercise the real
pipeline (card -> preprocessing -> engine -> mask) without the bundled default model.
"""

from __future__ import annotations

import json
from pathlib import Path

from vbg.card import InputSpec, ModelCard, OutputSpec, sha256_of

TINY_DECODER = (16, 16, 8, 8, 8)


def build_tiny_unet(seed: int = 0, in_channels: int = 3):
    """smp U-Net, MobileNetV2 encoder without pretrained weights, narrow decoder
    (in_channels 4: a prior model, the fourth channel the previous frame's probability)."""
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(seed)
    model = smp.Unet(
        encoder_name="mobilenet_v2",
        encoder_weights=None,
        decoder_channels=TINY_DECODER,
        classes=1,
        in_channels=in_channels,
    )
    return model.eval()


def make_tiny_model(
    out_dir: Path, height: int = 64, width: int = 96, seed: int = 0, prior: bool = False
) -> Path:
    """Writes tiny.onnx, tiny.pt and tiny.json (the card) into out_dir; returns the card path.
    prior: a model with the previous-frame input (vbg.card.InputSpec.prior)."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    channels = 4 if prior else 3
    model = build_tiny_unet(seed, channels)
    x = torch.randn(1, channels, height, width)
    onnx_path = out_dir / "tiny.onnx"
    torch.onnx.export(
        model,
        x,
        str(onnx_path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}},
        opset_version=17,
        dynamo=False,
    )
    torch.save(model.state_dict(), out_dir / "tiny.pt")
    card = ModelCard(
        name="tiny-test",
        architecture="Unet",
        encoder="mobilenet_v2",
        decoder_channels=TINY_DECODER,
        input=InputSpec(height=height, width=width, prior=prior),
        output=OutputSpec(),
        files={"onnx": "tiny.onnx", "torch": "tiny.pt"},
        sha256={"tiny.onnx": sha256_of(onnx_path)},
        training={"data": "none: random weights for tests"},
    )
    path = card.save(out_dir / "tiny.json")
    json.loads(path.read_text())  # the card must round-trip as JSON
    return path
