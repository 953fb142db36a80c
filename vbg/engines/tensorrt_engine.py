"""TensorRT through torch-tensorrt (vbg[gpu]): the fastest engine on an NVIDIA GPU.

The card's PyTorch network is compiled ahead of time (`torch_tensorrt.compile`, dynamo
frontend) into an FP16 TensorRT engine for one static input shape: a camera or a video
keeps one frame size, and a static engine is faster than a dynamic-shape one.

Compiling takes seconds to minutes, so the compiled program is saved
(`torch_tensorrt.save`, exported-program format) in vbg's cache folder under a key of the
GPU, its compute capability, the torch / torch-tensorrt / TensorRT versions, the precision,
the shape and the weights' sha256 (vbg.engines.cache), and the next start loads it instead
("compiling for this GPU, once" is said only the first time).

FP16 by the route the installed release supports: recent releases build strongly typed
networks (`use_explicit_typing`), which run in the dtype of the module and its inputs, so
the module and the input are cast to half; older ones take `enabled_precisions={half}`,
passed only where the installed CompilationSettings still has that field. The input
argument is `arg_inputs` in recent releases and `inputs` in older ones.

A compile that fails (an unsupported layer, an out-of-memory build) does not stop the
program: the engine says why in one line and runs the same network on `torch-cuda` from
then on. It never falls back to the CPU.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard, sha256_of
from vbg.engines import check_input
from vbg.engines.cache import EngineCache, EngineKey, make_key

log = logging.getLogger(__name__)

MAX_LOADED_SHAPES = 3
PRECISION = "fp16"
NEEDS = "the tensorrt engine needs torch-tensorrt and a CUDA GPU: pip install 'vbg[gpu]'"


class EngineBuildError(VbgError):
    """The network could not be compiled (or a cached program loaded) for this GPU."""


def settings_fields(torch_tensorrt: Any) -> set[str]:
    try:
        from torch_tensorrt.dynamo import CompilationSettings

        return {f.name for f in dataclasses.fields(CompilationSettings)}
    except (ImportError, TypeError):
        return set()


def precision_kwargs(torch: Any, fields: set[str]) -> dict:
    """FP16 for the installed release (see the module docstring)."""
    if "use_explicit_typing" in fields:
        return {"use_explicit_typing": True}
    if "enabled_precisions" in fields or not fields:
        return {"enabled_precisions": {torch.half}}
    return {}


def inputs_kwarg(fn: Any) -> str:
    """'arg_inputs' where the function takes it (recent releases), else 'inputs'."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return "inputs"
    return "arg_inputs" if "arg_inputs" in params else "inputs"


def library_versions(torch: Any, torch_tensorrt: Any) -> dict[str, str]:
    versions = {
        "torch": str(getattr(torch, "__version__", "?")),
        "torch_tensorrt": str(getattr(torch_tensorrt, "__version__", "?")),
        "cuda": str(getattr(getattr(torch, "version", None), "cuda", None) or "none"),
    }
    try:
        import tensorrt

        versions["tensorrt"] = str(tensorrt.__version__)
    except ImportError:
        versions["tensorrt"] = "absent"
    return versions


class TensorRTEngine:
    name = "tensorrt"

    def __init__(
        self,
        card: ModelCard,
        *,
        threads: int | None = None,
        device: str | None = None,
        cache: EngineCache | None = None,
        torch_device: str = "cuda",
        gpu: tuple[str, tuple[int, int]] | None = None,
        fallback: Any = None,
        say: Any = None,
    ) -> None:
        """torch_device, gpu: the tests run the whole flow on torch's CPU device with a
        stand-in torch_tensorrt module; a user never sets them. fallback: a factory for the
        engine used when a compile fails (default: torch-cuda). say: where progress
        messages go (default: stderr)."""
        if device not in (None, "cuda"):
            raise VbgError("the tensorrt engine runs on a CUDA GPU only")
        try:
            import torch
            import torch_tensorrt
        except ImportError as e:
            raise VbgError(NEEDS) from e
        if torch_device == "cuda" and not torch.cuda.is_available():
            raise VbgError(NEEDS + " (torch sees no CUDA GPU)")
        from vbg.engines.torch_engine import build_module

        self._torch, self._trt = torch, torch_tensorrt
        self.card = card
        self._channels = card.input.channels
        self._device = torch.device(torch_device)
        self.tensor_device = str(self._device)  # where run_tensor's tensors live
        self._dtype = torch.half if self._device.type == "cuda" else torch.float32
        self._module = build_module(card).to(self._device, dtype=self._dtype).eval()
        self._weights_sha = sha256_of(card.verify_file("torch"))
        if gpu is None:
            gpu = (torch.cuda.get_device_name(), tuple(torch.cuda.get_device_capability()))
        self.gpu_name, self.capability = gpu
        self.versions = library_versions(torch, torch_tensorrt)
        self.cache = cache or EngineCache()
        self._fields = settings_fields(torch_tensorrt)
        self._loaded: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._fallback_factory = fallback
        self.fallback: Any = None  # the engine in use after a failed compile
        self.fallback_reason = ""
        self._say = say or (lambda msg: print(f"vbg: {msg}", file=sys.stderr, flush=True))
        self.compiles = 0  # programs compiled by this engine (not loaded from the cache)

    # --- the cache ---------------------------------------------------------------------

    def key(self, shape: tuple[int, ...]) -> EngineKey:
        return make_key(
            engine="tensorrt",
            gpu=self.gpu_name,
            capability=self.capability,
            versions=self.versions,
            precision=PRECISION,
            shape=shape,
            weights_sha256=self._weights_sha,
        )

    def _example(self, shape: tuple[int, ...]):
        return self._torch.zeros(shape, dtype=self._dtype, device=self._device)

    def _compile(self, shape: tuple[int, ...]):
        trt = self._trt
        kwargs = {inputs_kwarg(trt.compile): [self._example(shape)]}
        kwargs.update(precision_kwargs(self._torch, self._fields))
        self._say(
            f"tensorrt: compiling for this GPU, once ({self.gpu_name}, input "
            f"{shape[2]}x{shape[3]}, batch {shape[0]}); later starts load it from "
            f"{self.cache.folder}"
        )
        try:
            compiled = trt.compile(self._module, ir="dynamo", **kwargs)
        except Exception as e:  # torch-tensorrt raises many types; each is "cannot compile"
            msg = f"torch-tensorrt could not compile the model: {_first(e)}"
            raise EngineBuildError(msg) from e
        self.compiles += 1
        return compiled

    def _save(self, compiled, shape: tuple[int, ...], key: EngineKey) -> None:
        trt = self._trt
        kwargs = {inputs_kwarg(trt.save): [self._example(shape)]}

        def write(path: Path) -> None:
            trt.save(compiled, str(path), output_format="exported_program", **kwargs)

        try:
            where = self.cache.store(key, write)
            log.info("tensorrt: saved the compiled program to %s", where)
        except Exception as e:  # a full disk or a read-only cache: run, just not cached
            log.warning("tensorrt: could not save the compiled program (%s)", _first(e))

    def _load(self, path: Path):
        try:
            return self._trt.load(str(path)).module()
        except Exception as e:  # a stale or damaged file: compile again, overwrite it
            log.warning("tensorrt: cached program %s unusable (%s); recompiling", path, _first(e))
            return None

    def program_for(self, shape: tuple[int, ...]):
        """The compiled program for `shape`: in memory, else from the cache, else compiled
        (and saved). Raises EngineBuildError when compiling fails."""
        mod = self._loaded.get(shape)
        if mod is not None:
            self._loaded.move_to_end(shape)
            return mod
        key = self.key(shape)
        cached = self.cache.lookup(key)
        mod = self._load(cached) if cached is not None else None
        if mod is None:
            mod = self._compile(shape)
            self._save(mod, shape, key)
        self._loaded[shape] = mod
        if len(self._loaded) > MAX_LOADED_SHAPES:
            self._loaded.popitem(last=False)
        return mod

    # --- running -----------------------------------------------------------------------

    def _fall_back(self, err: EngineBuildError) -> None:
        self.fallback_reason = str(err)
        factory = self._fallback_factory
        if factory is None:
            from vbg.engines.torch_engine import TorchEngine

            def factory():
                return TorchEngine(self.card, device="cuda")

        self.fallback = factory()
        self.name = f"{self.fallback.name} (tensorrt failed)"
        self._say(f"tensorrt: {err}; using {self.fallback.name} instead")
        self._loaded.clear()
        self._module = None

    def run_tensor(self, x):
        """(N, 3, h, w) tensor on the device -> float32 output tensor on the device."""
        if self.fallback is not None:
            return self.fallback.run_tensor(x)
        try:
            mod = self.program_for(tuple(x.shape))
        except EngineBuildError as e:
            self._fall_back(e)
            return self.fallback.run_tensor(x)
        with self._torch.inference_mode():
            y = mod(x.to(self._device, dtype=self._dtype))
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.float()

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x, self._channels)
        t = self._torch.from_numpy(x).to(self._device, non_blocking=True)
        return self.run_tensor(t).cpu().numpy()

    def close(self) -> None:
        self._loaded.clear()
        self._module = None
        if self.fallback is not None:
            self.fallback.close()


def _first(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]
