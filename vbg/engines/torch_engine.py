"""PyTorch: rebuilds the network from the card and loads the training weights (vbg[torch]).

On CUDA it runs under fp16 autocast (about twice the speed of fp32 on tensor cores, with
no visible change to a soft mask); on the CPU in fp32, which is the slowest engine and
mostly useful to check the ONNX export against the network it came from.
"""

from __future__ import annotations

import contextlib

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard
from vbg.engines import check_input

_NEEDS = "the torch engine needs torch and segmentation-models-pytorch: pip install 'vbg[torch]'"


def import_torch():
    try:
        import segmentation_models_pytorch as smp
        import torch
    except ImportError as e:
        raise VbgError(_NEEDS) from e
    return torch, smp


def build_module(card: ModelCard):
    """The card's network with its weights (card.file("torch")), in eval mode on the CPU.

    The weights must fit the architecture exactly (strict loading): a card whose encoder or
    decoder widths differ from the weights is an error, never a half-loaded model.
    """
    torch, smp = import_torch()
    path = card.verify_file("torch")
    kwargs = {
        "encoder_name": card.encoder,
        "encoder_weights": None,
        "classes": card.output.channels,
    }
    if card.decoder_channels:
        kwargs["decoder_channels"] = tuple(card.decoder_channels)
    arch = card.architecture
    try:
        if arch.lower() == "unet":
            model = smp.Unet(**kwargs)
        else:
            model = smp.create_model(arch=arch, **kwargs)
    except (KeyError, ValueError, TypeError) as e:
        raise VbgError(
            f"model card {card.path}: cannot build {arch} with encoder {card.encoder!r} ({e})"
        ) from e

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise VbgError(f"cannot read torch weights {path}: {e}") from e
    # A training checkpoint holds the weights under a key; plain exports are the state_dict.
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise VbgError(f"torch weights {path} are not a state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
        raise VbgError(
            f"torch weights file {path} does not match its card {card.path} "
            f"({card.architecture}/{card.encoder}): {detail[:200]}"
        ) from e
    return model.eval()


class TorchEngine:
    """smp network in PyTorch; device "cpu" or "cuda" (fp16 autocast on CUDA)."""

    def __init__(
        self,
        card: ModelCard,
        *,
        threads: int | None = None,
        device: str | None = None,
        default_device: str = "cpu",
    ) -> None:
        torch, _ = import_torch()
        device = device or default_device
        if device == "cuda" and not torch.cuda.is_available():
            raise VbgError("the torch engine was asked for cuda, but torch sees no CUDA GPU")
        self.device = torch.device(device)
        self.name = "torch-cuda" if device == "cuda" else "torch"
        if threads and device == "cpu":
            # Process-wide in PyTorch: the engine is the only torch user in the runtime.
            torch.set_num_threads(threads)
        if device == "cuda":
            # Frame sizes repeat, so cuDNN's per-shape autotuning pays for itself at once.
            torch.backends.cudnn.benchmark = True
        self._torch = torch
        self._module = build_module(card).to(self.device)
        self._autocast = (
            torch.autocast(device_type="cuda", dtype=torch.float16)
            if device == "cuda"
            else contextlib.nullcontext()
        )

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x)
        torch = self._torch
        with torch.inference_mode(), self._autocast:
            t = torch.from_numpy(x).to(self.device, non_blocking=True)
            y = self._module(t)
        # .cpu() is the sync point with the GPU: the frame needs its mask now.
        return y.float().cpu().numpy()

    def close(self) -> None:
        self._module = None
