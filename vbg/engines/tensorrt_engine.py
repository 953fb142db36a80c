"""TensorRT through torch-tensorrt (vbg[gpu]): the fastest engine on an NVIDIA GPU.

The card's PyTorch network is compiled ahead of time (torch_tensorrt.compile, dynamo
frontend) into an FP16 TensorRT engine for one static input shape; a camera or a video keeps
one frame size, so each shape is compiled once (seconds to a minute) and cached, and a
static engine is faster than a dynamic-shape one.

FP16: the module and its input are cast to half. Recent torch-tensorrt always builds
strongly typed networks, which run in the dtype of their weights and inputs; older releases
instead take `enabled_precisions={torch.half}`, which is passed only where the installed
version still has that setting.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard
from vbg.engines import check_input
from vbg.engines.torch_engine import build_module

log = logging.getLogger(__name__)

MAX_CACHED_SHAPES = 3
_NEEDS = "the tensorrt engine needs torch-tensorrt and a CUDA GPU: pip install 'vbg[gpu]'"


def _precision_kwargs(torch, torch_tensorrt) -> dict:
    try:
        from torch_tensorrt.dynamo import CompilationSettings

        fields = {f.name for f in dataclasses.fields(CompilationSettings)}
    except (ImportError, TypeError):
        fields = {"enabled_precisions"}
    return {"enabled_precisions": {torch.half}} if "enabled_precisions" in fields else {}


class TensorRTEngine:
    name = "tensorrt"

    def __init__(
        self, card: ModelCard, *, threads: int | None = None, device: str | None = None
    ) -> None:
        if device not in (None, "cuda"):
            raise VbgError("the tensorrt engine runs on a CUDA GPU only")
        try:
            import torch
            import torch_tensorrt
        except ImportError as e:
            raise VbgError(_NEEDS) from e
        if not torch.cuda.is_available():
            raise VbgError(_NEEDS + " (torch sees no CUDA GPU)")
        self._torch = torch
        self._trt = torch_tensorrt
        self._device = torch.device("cuda")
        self._module = build_module(card).to(self._device).half().eval()
        self._compile_kwargs = _precision_kwargs(torch, torch_tensorrt)
        self._compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def _compiled_for(self, shape: tuple[int, ...]):
        mod = self._compiled.get(shape)
        if mod is not None:
            self._compiled.move_to_end(shape)
            return mod
        torch, trt = self._torch, self._trt
        log.info("tensorrt: building an FP16 engine for input %s (once per frame size)", shape)
        try:
            mod = trt.compile(
                self._module,
                ir="dynamo",
                inputs=[trt.Input(shape, dtype=torch.half)],
                **self._compile_kwargs,
            )
        except (RuntimeError, ValueError, TypeError, AssertionError) as e:
            raise VbgError(f"torch-tensorrt could not compile the model for {shape}: {e}") from e
        self._compiled[shape] = mod
        if len(self._compiled) > MAX_CACHED_SHAPES:
            self._compiled.popitem(last=False)
        return mod

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x)
        torch = self._torch
        mod = self._compiled_for(tuple(x.shape))
        with torch.no_grad():
            t = torch.from_numpy(x).to(self._device, non_blocking=True).half()
            y = mod(t)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.float().cpu().numpy()

    def close(self) -> None:
        self._compiled.clear()
        self._module = None
