"""Where the bundled files are: default model, backgrounds, sample clip.

An installed vbg carries the repository's top-level assets/ folder as the package
vbg._assets (see pyproject.toml); a checkout that is not installed uses assets/ directly.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from vbg import VbgError

_RESOURCE_PACKAGE = "vbg._assets"


def assets_dir() -> Path:
    """The folder holding backgrounds/, models/ and samples/."""
    try:
        root = Path(str(importlib.resources.files(_RESOURCE_PACKAGE)))
    except ModuleNotFoundError:
        root = None
    if root is not None and (root / "backgrounds").is_dir():
        return root
    checkout = Path(__file__).resolve().parent.parent / "assets"
    if (checkout / "backgrounds").is_dir():
        return checkout
    raise VbgError(
        "vbg's bundled assets are missing (no backgrounds folder in the package or beside "
        "the source); reinstall vbg"
    )


def default_card_path() -> Path:
    """Card of the default model (assets/models/default.json); it may not exist yet."""
    return assets_dir() / "models" / "default.json"


def int8_card_path() -> Path:
    """Card of the default model's static INT8 copy (python -m train quantize), which the
    CPU engines run when no --model is given: same test-split IoU, 1.3-1.4x faster on a
    CPU with VNNI (README, The default model)."""
    return assets_dir() / "models" / "default-int8.json"


def hq_card_path(int8: bool = False) -> Path:
    """Card of the high-quality model that `--quality high` runs beside the default
    (assets/models/hq.json, or its INT8 copy hq-int8.json); it may not be bundled."""
    return assets_dir() / "models" / ("hq-int8.json" if int8 else "hq.json")


def sample_clip_path() -> Path:
    """The bundled sample clip (960x540, 30 fps, 72 frames, with audio)."""
    return assets_dir() / "samples" / "talking-head.mp4"
