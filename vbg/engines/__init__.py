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


_REGISTRY: dict[str, EngineInfo] = {}


def register_engine(
    name: str,
    factory: EngineFactory,
    *,
    priority: int,
    available: Callable[[], bool],
    extra: str,
    devices: Sequence[str] = ("cpu",),
) -> None:
    """Adds (or replaces) an engine. `available` must be cheap-ish and never raise."""
    if name == "auto":
        raise ValueError("'auto' is reserved")
    _REGISTRY[name] = EngineInfo(name, factory, priority, available, extra, tuple(devices))


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
    if info.extra:
        return f"pip install 'vbg[{info.extra}]'"
    return "reinstall vbg (pip install vbg); its core dependencies are missing"


def default_threads() -> int:
    """Intra-op threads when none are asked for: a few cores, leaving some for capture and
    compositing, which run beside inference in the live loop."""
    return max(1, min(4, os.cpu_count() or 1))


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
        candidates = [
            n for n in available_engines() if device is None or device in _REGISTRY[n].devices
        ]
        if not candidates:
            where = f" on {device}" if device else ""
            raise VbgError(
                f"no inference engine can run{where} here; install one, e.g. "
                "pip install onnxruntime (registered: " + ", ".join(engine_names()) + ")"
            )
        info = _REGISTRY[candidates[0]]
        log.info("engine: %s (auto; available: %s)", info.name, ", ".join(candidates))
    else:
        info = engine_info(name)
        if device is not None and device not in info.devices:
            raise VbgError(f"engine '{name}' cannot run on {device}")
        if not _is_available(info):
            raise VbgError(
                f"engine '{name}' is not available here: {install_hint(info)}"
                + (" (and it needs a CUDA GPU)" if info.devices == ("cuda",) else "")
            )
        log.info("engine: %s", info.name)
    return info.factory(card, threads=threads, device=device)


# --- helpers shared by the backends -------------------------------------------------------


def check_input(x: np.ndarray) -> None:
    """The boundary check every engine's run() makes: wrong input is a programming error."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"engine input must be a float32 numpy array, not {getattr(x, 'dtype', x)}")
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"engine input must have shape (1, 3, h, w), not {x.shape}")


def check_model_input(dims: Sequence[int | None], card: ModelCard, where: str) -> None:
    """Checks a model file's declared input shape (None = dynamic) against its card.

    Rank 4, 3 channels, and a static height/width only where the card says every frame is
    stretched to exactly that size: with fit="area" the input size follows the frame's
    aspect ratio, which a fixed-size model cannot take.
    """
    if len(dims) != 4:
        raise VbgError(
            f"{where} does not match its card: input rank {len(dims)}, expected 4 (NCHW)"
        )
    if dims[1] is not None and dims[1] != 3:
        raise VbgError(f"{where} does not match its card: it takes {dims[1]} input channels, not 3")
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


def _lazy(module: str, cls: str, **fixed) -> EngineFactory:
    """A factory that imports the backend module only when the engine is created."""

    def factory(card: ModelCard, *, threads: int | None = None, device: str | None = None):
        kwargs = {"threads": threads, "device": device, **fixed}
        return getattr(importlib.import_module(module), cls)(card, **kwargs)

    return factory


# Priorities, fastest first (measured on 2 CPU threads: OpenVINO ~2x onnxruntime on CPU;
# a GPU engine beats either; plain torch on CPU is the slowest).
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
)
register_engine(
    "torch-cuda",
    _lazy("vbg.engines.torch_engine", "TorchEngine", default_device="cuda"),
    priority=40,
    available=lambda: _has_module("segmentation_models_pytorch") and _cuda_available(),
    extra="torch",
    devices=("cuda",),
)
register_engine(
    "openvino",
    _lazy("vbg.engines.openvino_engine", "OpenVINOEngine"),
    priority=30,
    available=lambda: _has_module("openvino"),
    extra="openvino",
)
register_engine(
    "onnxruntime",
    _lazy("vbg.engines.onnxruntime_engine", "OnnxRuntimeEngine"),
    priority=20,
    available=lambda: _has_module("onnxruntime"),
    extra="",
    devices=("cpu", "cuda"),
)
register_engine(
    "torch",
    _lazy("vbg.engines.torch_engine", "TorchEngine", default_device="cpu"),
    priority=10,
    available=lambda: _has_module("torch") and _has_module("segmentation_models_pytorch"),
    extra="torch",
    devices=("cpu", "cuda"),
)
