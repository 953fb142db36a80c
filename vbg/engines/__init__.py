"""Inference engines behind one small protocol, and a registry that picks the fastest.

An engine turns the preprocessed tensor (1, 3, h, w) float32 into the model's raw output
(1, 1, h, w) float32 (logits or probability, as the card says). Everything around that —
resizing, normalisation, sigmoid — lives in vbg.segmenter, so engines stay interchangeable
and are tested against each other on the same input.

Each backend module imports its heavy library (torch, openvino, torch_tensorrt) inside
itself, and the registry only imports a module when that engine is created, so importing
vbg.engines is cheap and a missing extra fails with one line naming it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")


@runtime_checkable
class Engine(Protocol):
    name: str

    def run(self, x: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 -> (1, C, h, w) float32 raw model output."""
        ...

    def close(self) -> None: ...


# factory(card, *, threads, device) -> Engine
EngineFactory = Callable[..., Engine]


@dataclass(frozen=True)
class EngineInfo:
    name: str
    factory: EngineFactory
    priority: int  # higher = faster; "auto" picks the highest available
    available: Callable[[], bool]
    extra: str  # the pip extra that provides it ("" = a core dependency), for error messages
    devices: tuple[str, ...] = ("cpu",)
    # Why it cannot run here ("" when it can): `vbg info` and the fallback messages.
    reason: Callable[[], str] | None = None
    install: str = ""  # the command that makes it available, when not an extra of vbg


_REGISTRY: dict[str, EngineInfo] = {}


def register_engine(
    name: str,
    factory: EngineFactory,
    *,
    priority: int,
    available: Callable[[], bool],
    extra: str,
    devices: Sequence[str] = ("cpu",),
    reason: Callable[[], str] | None = None,
    install: str = "",
) -> None:
    """Adds (or replaces) an engine. `available` must be cheap-ish and never raise;
    `reason` (optional) says why it is not available."""
    if name == "auto":
        raise ValueError("'auto' is reserved")
    _REGISTRY[name] = EngineInfo(
        name, factory, priority, available, extra, tuple(devices), reason, install
    )


def unregister_engine(name: str) -> None:
    _REGISTRY.pop(name, None)


def engine_info(name: str) -> EngineInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise VbgError(
            f"unknown engine '{name}'; choose one of: auto, {', '.join(engine_names())}"
        ) from None


def engine_names() -> list[str]:
    """Every registered engine, fastest first."""
    return [e.name for e in sorted(_REGISTRY.values(), key=lambda e: -e.priority)]


def _is_available(info: EngineInfo) -> bool:
    # An availability probe that breaks (a half-installed CUDA, say) means "not available",
    # not a crash of `auto`; the reason is still logged for whoever debugs it.
    try:
        return bool(info.available())
    except (ImportError, OSError, RuntimeError) as e:
        log.debug("engine %s unavailable: %s", info.name, e)
        return False


def available_engines() -> list[str]:
    """Engines that can run on this machine, fastest first."""
    return [n for n in engine_names() if _is_available(_REGISTRY[n])]


def install_hint(info: EngineInfo) -> str:
    if info.install:
        return info.install
    if info.extra:
        return f"pip install 'vbg[{info.extra}]'"
    return "reinstall vbg (pip install vbg); its core dependencies are missing"


def unavailable_reason(info: EngineInfo) -> str:
    """Why the engine cannot run here, "" when it can."""
    if _is_available(info):
        return ""
    if info.reason is not None:
        try:
            why = info.reason()
        except (ImportError, OSError, RuntimeError) as e:
            why = f"its probe failed: {e}"
        if why:
            return why
    return "not installed"


@dataclass(frozen=True)
class EngineStatus:
    name: str
    available: bool
    reason: str  # "" when available
    install: str  # the command that would make it available
    devices: tuple[str, ...]


def engine_report() -> list[EngineStatus]:
    """Every registered engine, fastest first, with whether it runs here and why not."""
    out = []
    for name in engine_names():
        info = _REGISTRY[name]
        why = unavailable_reason(info)
        if not why:
            hint = ""
        elif "not installed" in why or info.install:
            hint = install_hint(info)
        elif "build has no CUDA" in why:
            hint = "pip install torch==2.14.1 (PyPI's Linux wheel is the CUDA build)"
        else:  # the libraries are there, the GPU is not
            hint = "needs an NVIDIA GPU with its driver"
        out.append(EngineStatus(name, not why, why, hint, info.devices))
    return out


def _gpu_fallback(info: EngineInfo, device: str | None) -> EngineInfo | None:
    """For a GPU engine that cannot run: the best available engine on the same device
    (a GPU is never swapped for the CPU behind the user's back)."""
    if "cpu" in info.devices or not _cuda_available():
        return None
    for n in available_engines():
        other = _REGISTRY[n]
        if n != info.name and "cuda" in other.devices and other.priority < info.priority:
            return other
    return None


def default_threads() -> int:
    """Intra-op threads when none are asked for: a few cores, leaving some for capture and
    compositing, which run beside inference in the live loop."""
    return max(1, min(4, os.cpu_count() or 1))


def _auto_candidates(device: str | None) -> list[str]:
    # Available engines that can run on `device`, fastest first: "auto" takes the first.
    return [n for n in available_engines() if device is None or device in _REGISTRY[n].devices]


def resolve_engine(name: str, device: str | None = None) -> str:
    """The engine `create_engine(name, ...)` will build when it is available ("auto": the
    fastest available one that runs on `device`); the name as given otherwise."""
    if name != "auto":
        return name
    candidates = _auto_candidates(device)
    return candidates[0] if candidates else name


def create_engine(
    name: str,
    card: ModelCard,
    *,
    threads: int | None = None,
    device: str | None = None,
) -> Engine:
    """Builds engine `name` ("auto" = the fastest available) for the model on `card`.

    device: None (the engine's own choice), "cpu" or "cuda". With "auto", a device limits the
    choice to engines that can run there.
    """
    if device is not None and device not in DEVICES:
        raise VbgError(f"unknown device '{device}'; choose one of: {', '.join(DEVICES)}")
    if threads is not None and threads < 1:
        raise VbgError(f"threads must be at least 1, not {threads}")
    if name == "auto":
        candidates = _auto_candidates(device)
        if not candidates:
            where = f" on {device}" if device else ""
            raise VbgError(
                f"no inference engine can run{where} here; install one, e.g. "
                "pip install onnxruntime (registered: " + ", ".join(engine_names()) + ")"
            )
        info = _REGISTRY[candidates[0]]
        skipped = [
            f"{e.name}: {unavailable_reason(e)}"
            for e in (_REGISTRY[n] for n in engine_names())
            if e.priority > info.priority and "cuda" in e.devices and "cuda" in info.devices
        ]
        log.info(
            "engine: %s (auto; available: %s)%s",
            info.name,
            ", ".join(candidates),
            f"; not used: {'; '.join(skipped)}" if skipped else "",
        )
    else:
        info = engine_info(name)
        if device is not None and device not in info.devices:
            raise VbgError(f"engine '{name}' cannot run on {device}")
        if not _is_available(info):
            why = unavailable_reason(info)
            other = _gpu_fallback(info, device)
            if other is None:
                raise VbgError(
                    f"engine '{name}' is not available here ({why}): {install_hint(info)}"
                )
            log.warning("engine: %s not available (%s); using %s", name, why, other.name)
            info = other
        else:
            log.info("engine: %s", info.name)
    if "cuda" in info.devices and "cpu" not in info.devices:
        device = "cuda"
    return info.factory(card, threads=threads, device=device)


# --- helpers shared by the backends -------------------------------------------------------


def check_input(x: np.ndarray, channels: int = 3) -> None:
    """The boundary check every engine's run() makes: wrong input is a programming error.
    channels: the card's (4 for a model with a previous-frame input)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"engine input must be a float32 numpy array, not {getattr(x, 'dtype', x)}")
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != channels:
        raise ValueError(f"engine input must have shape (1, {channels}, h, w), not {x.shape}")


def check_model_input(dims: Sequence[int | None], card: ModelCard, where: str) -> None:
    """Checks a model file's declared input shape (None = dynamic) against its card.

    Rank 4, the card's channels (3, or 4 with a previous-frame input), and a static
    height/width only where the card says every frame is stretched to exactly that size:
    with fit="area" the input size follows the frame's aspect ratio, which a fixed-size
    model cannot take.
    """
    if len(dims) != 4:
        raise VbgError(
            f"{where} does not match its card: input rank {len(dims)}, expected 4 (NCHW)"
        )
    want = card.input.channels
    if dims[1] is not None and dims[1] != want:
        raise VbgError(
            f"{where} does not match its card: it takes {dims[1]} input channels, not {want}"
        )
    h, w = dims[2], dims[3]
    spec = card.input
    if h is None and w is None:
        return
    if (h is not None and h != spec.height) or (w is not None and w != spec.width):
        raise VbgError(
            f"{where} does not match its card: fixed input {h}x{w}, card says "
            f"{spec.height}x{spec.width}"
        )
    if spec.fit != "stretch":
        raise VbgError(
            f"{where} has a fixed input size {h}x{w} but its card says fit='{spec.fit}' "
            "(input size follows the frame); export it with dynamic height/width or set "
            "fit='stretch' in the card"
        )


def check_model_output(dims: Sequence[int | None], card: ModelCard, where: str) -> None:
    if len(dims) != 4:
        raise VbgError(f"{where} does not match its card: output rank {len(dims)}, expected 4")
    c = dims[1]
    if c is not None and c != card.output.channels:
        raise VbgError(
            f"{where} does not match its card: {c} output channels, card says "
            f"{card.output.channels}"
        )


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _cuda_available() -> bool:
    if not _has_module("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _missing(*modules: str) -> str:
    names = {
        "segmentation_models_pytorch": "segmentation-models-pytorch",
        "torch_tensorrt": "torch-tensorrt",
    }
    gone = [names.get(m, m) for m in modules if not _has_module(m)]
    return f"{', '.join(gone)} not installed" if gone else ""


def _cuda_reason() -> str:
    """Why torch has no CUDA GPU here ("" when it has one)."""
    import torch

    if not getattr(torch.version, "cuda", None):
        return "this torch build has no CUDA support"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU (no NVIDIA driver or device)"
    return ""


def _torch_gpu_reason(*modules: str) -> str:
    return _missing("torch", *modules) or _cuda_reason()


def _ort_providers() -> list[str]:
    if not _has_module("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _ort_gpu_reason() -> str:
    if not _has_module("onnxruntime"):
        return "onnxruntime not installed"
    have = _ort_providers()
    if "CUDAExecutionProvider" not in have:
        return f"this onnxruntime is a CPU build (providers: {', '.join(have)})"
    return ""


def _lazy(module: str, cls: str, **fixed) -> EngineFactory:
    """A factory that imports the backend module only when the engine is created."""

    def factory(card: ModelCard, *, threads: int | None = None, device: str | None = None):
        kwargs = {"threads": threads, "device": device, **fixed}
        return getattr(importlib.import_module(module), cls)(card, **kwargs)

    return factory


# Priorities, fastest first (measured on 2 CPU threads: OpenVINO ~2x onnxruntime on CPU;
# a GPU engine beats either; plain torch on CPU is the slowest). On the GPU: TensorRT,
# then torch-cuda (FP16, CUDA graphs), then onnxruntime-gpu (for users without PyTorch).
register_engine(
    "tensorrt",
    _lazy("vbg.engines.tensorrt_engine", "TensorRTEngine"),
    priority=50,
    available=lambda: (
        _has_module("torch_tensorrt")
        and _has_module("segmentation_models_pytorch")
        and _cuda_available()
    ),
    extra="gpu",
    devices=("cuda",),
    reason=lambda: _torch_gpu_reason("torch_tensorrt", "segmentation_models_pytorch"),
)
register_engine(
    "torch-cuda",
    _lazy("vbg.engines.torch_engine", "TorchEngine", default_device="cuda"),
    priority=40,
    available=lambda: _has_module("segmentation_models_pytorch") and _cuda_available(),
    extra="torch",
    devices=("cuda",),
    reason=lambda: _torch_gpu_reason("segmentation_models_pytorch"),
)
register_engine(
    "onnxruntime-gpu",
    _lazy("vbg.engines.onnxruntime_engine", "OnnxRuntimeEngine"),
    priority=35,
    available=lambda: not _ort_gpu_reason(),
    extra="",
    devices=("cuda",),
    reason=_ort_gpu_reason,
    # Both wheels install the same `onnxruntime` module: the CPU one must go first.
    install="pip uninstall -y onnxruntime && pip install onnxruntime-gpu",
)
register_engine(
    "openvino",
    _lazy("vbg.engines.openvino_engine", "OpenVINOEngine"),
    priority=30,
    available=lambda: _has_module("openvino"),
    extra="openvino",
    reason=lambda: _missing("openvino"),
)
register_engine(
    "onnxruntime",
    _lazy("vbg.engines.onnxruntime_engine", "OnnxRuntimeEngine"),
    priority=20,
    available=lambda: _has_module("onnxruntime"),
    extra="",
    devices=("cpu",),
    reason=lambda: _missing("onnxruntime"),
)
register_engine(
    "torch",
    _lazy("vbg.engines.torch_engine", "TorchEngine", default_device="cpu"),
    priority=10,
    available=lambda: _has_module("torch") and _has_module("segmentation_models_pytorch"),
    extra="torch",
    devices=("cpu", "cuda"),
    reason=lambda: _missing("torch", "segmentation_models_pytorch"),
)
