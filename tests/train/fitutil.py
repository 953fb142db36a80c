"""A tiny training setup shared by the fit/resume/DDP/export/evaluate tests: a generated
COCO set of small images and a config for a narrow MobileNetV2 U-Net without pretrained
weights, so one epoch takes about a second on one CPU thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cocogen import make_coco
from train.config import TrainConfig, make_config

TINY_DECODER = (16, 16, 8, 8, 8)


def tiny_data(root: Path, n_images: int = 16) -> tuple[Path, Path]:
    """(annotation json, images root): 64x96 and 96x64 images, two 3-frame videos, a crowd
    region and empty images."""
    return make_coco(Path(root), n_images=n_images, size=(64, 96))


def tiny_config(ann: Path, images: Path, out: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "ann": str(ann),
        "images": str(images),
        "out": str(out),
        "encoder": "mobilenet_v2",
        "encoder_weights": "none",
        "decoder_channels": TINY_DECODER,
        "height": 64,
        "width": 96,
        "crop": (64, 96),
        "empty_fraction": 1.0,
        "epochs": 1,
        "batch_size": 4,
        "workers": 0,
        "lr": 1e-3,
        "device": "cpu",  # the same numbers on any machine, GPU or not
    }
    values.update(overrides)
    return make_config(None, values)
