"""Training configuration: one visible block of defaults, overridden by a YAML file, then by
command-line flags. The resolved config is saved as RUN/config.yaml beside the checkpoints,
so a run can always be resumed, evaluated and exported without repeating its flags.

The YAML file is flat: its keys are exactly the field names below. An unknown key is an
error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vbg import VbgError
from vbg.card import InputSpec

AMP_MODES = ("auto", "off", "fp16", "bf16")
CROWD_MODES = ("person", "ignore")


@dataclass
class TrainConfig:
    # --- data --------------------------------------------------------------------------
    ann: str = ""  # COCO instances JSON
    images: str = ""  # root that the JSON's file_name entries are relative to
    data_description: str = ""  # goes into the model card (name the source datasets)
    empty_fraction: float = 0.1  # share of images without people that is kept (COCO has many)
    crowd: str = "person"  # crowd regions: "person" or "ignore" (left out of the loss)
    max_images: int = 0  # cap after the empty-image selection; 0 = no cap
    seed: int = 0  # split, sampling, shuffling, augmentation and init all derive from it
    split: tuple[float, float, float] = (0.75, 0.125, 0.125)  # train/val/test, grouped
    mix: str = ""  # mix file: training-only pools + source/kind weights (train/sampler.py)
    # --- model -------------------------------------------------------------------------
    architecture: str = "Unet"
    encoder: str = "resnet34"
    encoder_weights: str = "imagenet"  # "imagenet" (smp download) | a local .pth | "none"
    # Fine-tuning: a whole-model state dict of the same network (e.g. a model card's .pt) to
    # start from instead of encoder_weights; every tensor must fit.
    init_weights: str = ""
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    # A fourth input channel: the model's own probability on the previous frame
    # (train/prior.py); trained on priors synthesised from each image's ground truth.
    prior: bool = False
    # How far the synthesised previous frame is from the truth: every perturbation's size
    # times this (1 = train/prior.py's defaults; smaller = closer to real frame-to-frame motion).
    prior_jitter: float = 1.0
    # --- model input (copied into the model card; the runtime resizes frames the same way)
    height: int = 160
    width: int = 288
    fit: str = "area"  # "area": keep aspect, ~height*width pixels, sides multiples of 32
    multiple: int = 32
    color_order: str = "RGB"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet: the encoders' own
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # --- training ----------------------------------------------------------------------
    crop: tuple[int, int] = (256, 256)  # training crop (H, W); multiples of 32
    scale_range: tuple[float, float] = (0.75, 1.25)  # random zoom around the area fit
    copy_paste: float = 0.0  # probability of pasting a person from another training image
    epochs: int = 30
    batch_size: int = 16  # per process under torchrun
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0  # linear warmup, then cosine annealing, both stepped per batch
    final_lr_ratio: float = 0.01  # the cosine ends at lr * this
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    boundary_weight: float = 0.0  # extra BCE on a band around the person's outline; 0 = off
    boundary_px: int = 3  # half-width of that band at model resolution
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    # Distillation: a teacher's soft masks as a second target (train/distill.py). teacher:
    # a vbg model card with torch weights whose licence allows it (never a GPL model such
    # as Robust Video Matting); distill_weight: weight of BCE against its probabilities.
    teacher: str = ""
    distill_weight: float = 0.0
    amp: str = "auto"  # auto: fp16 + GradScaler on CUDA, fp32 on CPU | off | fp16 | bf16
    workers: int = 2  # DataLoader worker processes
    val_every: int = 1  # validate every N epochs (and always after the last)
    val_max_images: int = 0  # validate on at most this many val images, evenly spaced; 0 = all
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    time_limit: float = 0.0  # minutes; stop after the epoch that crosses it (0 = none)
    fit_to_time: bool = False  # with time_limit: shorten `epochs` so the schedule ends in time
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower; exact repeats)
    out: str = "runs/run"  # run folder: config, splits, logs, checkpoints
    # Not a training knob: set by --resume (a checkpoint path, or "last" = OUT/last.pt).
    resume: str = field(default="", metadata={"saved": False})

    # ----------------------------------------------------------------------------------
    def input_spec(self) -> InputSpec:
        """The model card's input spec; train/ and the runtime preprocess through it."""
        return InputSpec(
            height=self.height,
            width=self.width,
            fit=self.fit,
            multiple=self.multiple,
            color_order=self.color_order,
            mean=tuple(self.mean),
            std=tuple(self.std),
            prior=self.prior,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples), ready for YAML/JSON; run-time-only fields left out."""
        out = {}
        for f in fields(self):
            if f.metadata.get("saved", True):
                v = getattr(self, f.name)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


DEFAULTS = TrainConfig()
_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Convert a YAML/CLI value to the type of the field's default, or fail with one line."""
    default = getattr(DEFAULTS, name)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError(f"expected true/false, got {value!r}")
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v for v in value.replace("x", ",").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expected a list, got {value!r}")
            kind = type(default[0])
            items = tuple(kind(v) for v in value)
            if name != "decoder_channels" and len(items) != len(default):
                raise ValueError(f"expected {len(default)} values, got {len(items)}")
            return items
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if isinstance(default, float):
            return float(value)
        if name == "encoder_weights" and value is None:
            return "none"  # YAML `null`
        if name == "amp" and isinstance(value, bool):
            return "auto" if value else "off"  # YAML reads a bare `off` as false
        return str(value)
    except (TypeError, ValueError) as e:
        raise VbgError(f"config key '{name}': {e}") from e


def validate(cfg: TrainConfig) -> TrainConfig:
    """Reject settings that would fail later, deep inside training, with a clear message."""

    def bad(msg: str) -> None:
        raise VbgError(f"config: {msg}")

    if cfg.crowd not in CROWD_MODES:
        bad(f"crowd must be one of {', '.join(CROWD_MODES)}, not {cfg.crowd!r}")
    if cfg.amp not in AMP_MODES:
        bad(f"amp must be one of {', '.join(AMP_MODES)}, not {cfg.amp!r}")
    if cfg.fit not in ("area", "stretch"):
        bad(f"fit must be 'area' or 'stretch', not {cfg.fit!r}")
    if cfg.color_order not in ("RGB", "BGR"):
        bad(f"color_order must be RGB or BGR, not {cfg.color_order!r}")
    if not 0.0 <= cfg.empty_fraction <= 1.0:
        bad("empty_fraction must lie in [0, 1]")
    if len(cfg.split) != 3 or min(cfg.split) < 0 or not math.isclose(sum(cfg.split), 1.0):
        bad(f"split must be three non-negative fractions summing to 1, not {list(cfg.split)}")
    for name in ("epochs", "batch_size", "val_every", "multiple"):
        if getattr(cfg, name) < 1:
            bad(f"{name} must be at least 1")
    if cfg.workers < 0 or cfg.max_images < 0 or cfg.val_max_images < 0:
        bad("workers, max_images and val_max_images must not be negative")
    if cfg.height < 1 or cfg.width < 1:
        bad("height and width must be positive")
    if any(c < 1 or c % 32 for c in cfg.crop):
        bad(
            f"crop sides must be positive multiples of 32 (the U-Net halves 5 times), not {list(cfg.crop)}"
        )
    if not 0 < cfg.scale_range[0] <= cfg.scale_range[1]:
        bad(f"scale_range must be 0 < low <= high, not {list(cfg.scale_range)}")
    if cfg.lr <= 0 or cfg.weight_decay < 0 or cfg.grad_clip < 0 or cfg.time_limit < 0:
        bad("lr must be positive; weight_decay, grad_clip and time_limit not negative")
    if cfg.prior_jitter < 0:
        bad("prior_jitter must not be negative")
    if min(cfg.bce_weight, cfg.dice_weight, cfg.boundary_weight) < 0:
        bad("loss weights must not be negative")
    if cfg.distill_weight < 0 or (cfg.distill_weight > 0 and not cfg.teacher):
        bad("distill_weight must be >= 0, and > 0 only with a teacher")
    if cfg.bce_weight + cfg.dice_weight + cfg.boundary_weight == 0:
        bad("at least one loss weight must be positive")
    if not cfg.encoder_weights:
        cfg.encoder_weights = "none"
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's keys, checked against the dataclass (unknown keys are errors)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise VbgError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise VbgError(f"config file {path} is not valid YAML: {e}".replace("\n", " ")) from e
    if not isinstance(data, dict):
        raise VbgError(f"config file {path} must hold a mapping of keys to values")
    unknown = sorted(
        k for k in data if k not in _FIELDS or not _FIELDS[k].metadata.get("saved", True)
    )
    if unknown:
        raise VbgError(
            f"config file {path}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"valid keys: {', '.join(k for k, f in _FIELDS.items() if f.metadata.get('saved', True))}"
        )
    return data


def make_config(
    yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults <- YAML file <- overrides (CLI flags; None values mean "not given")."""
    values: dict[str, Any] = {}
    if yaml_path:
        values.update(load_yaml(yaml_path))
    for k, v in (overrides or {}).items():
        if k not in _FIELDS:
            raise VbgError(f"unknown config key '{k}'")
        if v is not None:
            values[k] = v
    coerced = {k: _coerce(k, v) for k, v in values.items()}
    return validate(dataclasses.replace(DEFAULTS, **coerced))


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Writes the resolved config as YAML (atomically: a half-written config is worse than none)."""
    import yaml

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        "# resolved training config (defaults <- config file <- flags); valid as --config\n"
        + yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    )
    tmp.replace(path)
    return path


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """A config stored in a checkpoint back into the dataclass (unknown keys are errors)."""
    return make_config(None, {k: v for k, v in d.items()})


def parse_size(text: str) -> tuple[int, int]:
    """'160x288' -> (160, 288) (height x width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VbgError(f"size must look like HEIGHTxWIDTH (e.g. 160x288), not {text!r}") from None
    if h < 1 or w < 1:
        raise VbgError(f"size must be positive, not {text!r}")
    return h, w
