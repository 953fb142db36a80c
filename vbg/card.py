"""The model card: the one contract between train/ (which writes it) and the runtime.

A card is a small JSON file beside the weights. The runtime never guesses preprocessing:
input size, how a frame is fitted to it, mean/std, colour order and output kind all come
from here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vbg import VbgError

CARD_FORMAT = "vbg-model-card/1"


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model's input tensor.

    height/width: the nominal input size (what a 16:9 webcam frame is resized to).
    fit: "area" keeps the frame's aspect ratio and scales it to about height*width pixels,
         each side rounded to a multiple of `multiple` (the model is fully convolutional);
         "stretch" resizes every frame to exactly height x width.
    """

    height: int
    width: int
    fit: str = "area"
    multiple: int = 32
    color_order: str = "RGB"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    scale: float = 255.0  # pixel values are divided by this before mean/std
    # A fourth input channel: the model's own probability on the previous frame, as 2p - 1
    # (0 = no previous frame); the segmenter keeps it (vbg.segmenter, train/prior.py).
    prior: bool = False

    @property
    def channels(self) -> int:
        """Input channels of the model: the image's 3, and the prior's."""
        return 4 if self.prior else 3

    def size_for(self, frame_h: int, frame_w: int) -> tuple[int, int]:
        """Model input (h, w) for a frame of this size."""
        if self.fit == "stretch":
            return self.height, self.width
        budget = self.height * self.width
        s = (budget / float(frame_h * frame_w)) ** 0.5
        m = self.multiple
        h = max(m, int(round(frame_h * s / m)) * m)
        w = max(m, int(round(frame_w * s / m)) * m)
        return h, w


@dataclass(frozen=True)
class OutputSpec:
    kind: str = "logits"  # "logits" (apply sigmoid) or "probability"
    channels: int = 1
    threshold: float = 0.5


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    encoder: str
    input: InputSpec
    output: OutputSpec
    files: dict[str, str]  # role -> file name relative to the card: "onnx", "onnx_fp16", "torch"
    decoder_channels: tuple[int, ...] | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where the card was loaded from; not serialised

    def file(self, role: str) -> Path:
        """Absolute path of a weights file named by the card, checked to exist."""
        if role not in self.files or not self.files[role]:
            raise VbgError(f"model card {self.path} names no '{role}' file")
        base = self.path.parent if self.path else Path.cwd()
        p = (base / self.files[role]).resolve()
        if not p.is_file():
            raise VbgError(f"model file {p} named by card {self.path} does not exist")
        return p

    def verify_file(self, role: str) -> Path:
        """The file for `role`, checked against the card's sha256 when it records one."""
        p = self.file(role)
        want = self.sha256.get(self.files[role])
        if want and sha256_of(p) != want:
            raise VbgError(f"model file {p} does not match its card {self.path} (sha256 differs)")
        return p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        d["format"] = CARD_FORMAT
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_from_dict(d: dict[str, Any], path: Path | None = None) -> ModelCard:
    where = str(path) if path else "model card"
    if not isinstance(d, dict):
        raise VbgError(f"{where}: invalid model card (a JSON object is expected)")
    try:
        if d.get("format", CARD_FORMAT) != CARD_FORMAT:
            raise VbgError(
                f"{where}: unknown card format {d.get('format')!r}, expected {CARD_FORMAT}"
            )
        inp = dict(d["input"])
        for key in ("mean", "std"):
            if key in inp:
                inp[key] = tuple(float(v) for v in inp[key])
        if not isinstance(inp.get("prior", False), bool):
            raise VbgError(f"{where}: input.prior must be true or false, not {inp['prior']!r}")
        spec = InputSpec(**inp)
        out = OutputSpec(**d.get("output", {}))
        card = ModelCard(
            name=str(d["name"]),
            architecture=str(d["architecture"]),
            encoder=str(d["encoder"]),
            input=spec,
            output=out,
            files=dict(d["files"]),
            decoder_channels=tuple(d["decoder_channels"]) if d.get("decoder_channels") else None,
            sha256=dict(d.get("sha256", {})),
            training=dict(d.get("training", {})),
            metrics=dict(d.get("metrics", {})),
            path=path,
        )
    except VbgError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise VbgError(f"{where}: invalid model card ({type(e).__name__}: {e})") from e
    if spec.fit not in ("area", "stretch"):
        raise VbgError(f"{where}: input.fit must be 'area' or 'stretch', not {spec.fit!r}")
    if spec.color_order not in ("RGB", "BGR"):
        raise VbgError(f"{where}: input.color_order must be RGB or BGR, not {spec.color_order!r}")
    if len(spec.mean) != 3 or len(spec.std) != 3:
        raise VbgError(f"{where}: input.mean and input.std need 3 values each")
    if out.kind not in ("logits", "probability"):
        raise VbgError(f"{where}: output.kind must be 'logits' or 'probability'")
    _check_numbers(spec, out, card.files, where)
    return card


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_numbers(spec: InputSpec, out: OutputSpec, files: dict[str, Any], where: str) -> None:
    """Values that would otherwise fail deep inside preprocessing (a division by zero, an
    empty tensor), reported as what is wrong with the card."""
    for key in ("height", "width", "multiple"):
        v = getattr(spec, key)
        if not _is_int(v) or not 1 <= v <= 8192:
            raise VbgError(f"{where}: input.{key} must be a whole number in 1..8192, not {v!r}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (*spec.mean, *spec.std)):
        raise VbgError(f"{where}: input.mean and input.std must be finite numbers")
    if any(v <= 0 for v in spec.std):
        raise VbgError(f"{where}: input.std values must be positive")
    if not isinstance(spec.scale, (int, float)) or not (
        math.isfinite(spec.scale) and spec.scale > 0
    ):
        raise VbgError(f"{where}: input.scale must be a positive number, not {spec.scale!r}")
    if not _is_int(out.channels) or out.channels < 1:
        raise VbgError(f"{where}: output.channels must be a positive whole number")
    if not isinstance(out.threshold, (int, float)) or not 0 < out.threshold < 1:
        raise VbgError(f"{where}: output.threshold must be between 0 and 1")
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in files.items()):
        raise VbgError(f"{where}: files must map engine names to file names")


def load_card(path: str | Path) -> ModelCard:
    path = Path(path).resolve()
    if not path.is_file():
        raise VbgError(f"model card {path} does not exist")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VbgError(f"model card {path} is not valid JSON: {e}") from e
    return card_from_dict(d, path)
