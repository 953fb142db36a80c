"""OpenVINO on the CPU (vbg[openvino]): the fastest CPU engine here (about twice onnxruntime
at 2 threads on the default model).

The ONNX model has dynamic height/width. OpenVINO's CPU plugin runs dynamic shapes, but a
model compiled for one static shape is faster, and a video or camera keeps one frame size,
so the engine compiles once per input size and keeps a few compiled sizes.

A compile takes 0.5-0.8 s here (2 cores), which a live call must not show as a frozen
picture. `ready(h, w)` compiles a size on a background thread and says whether it is done;
vbg.roi's person crops (six sizes) ask it first and use the whole frame until then. That
thread runs at the lowest priority: a compile keeps one core busy, and at normal priority
it slowed the live loop's frames from 16 to 100 ms while it ran. Compiled sizes are kept
in OpenVINO's model cache (vbg's cache folder, openvino/), so a later start loads them in
about 0.14 s instead of compiling: the first frame, too, no longer waits 0.7-1 s.

On CPUs with bf16 support OpenVINO infers in bf16 by default (part of its speed); logits
then differ from fp32 engines by ~1e-2, which does not show in a mask.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard
from vbg.engines import check_input, check_model_input, check_model_output, default_threads
from vbg.engines.cache import cache_root
from vbg.threads import lowest_priority

log = logging.getLogger("vbg")

# The frame's size, vbg.roi's six crop sizes, and one more (a resized camera).
MAX_CACHED_SIZES = 8


def _dims(partial_shape) -> list[int | None]:
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OpenVINOEngine:
    name = "openvino"

    def __init__(
        self, card: ModelCard, *, threads: int | None = None, device: str | None = None
    ) -> None:
        if device not in (None, "cpu"):
            raise VbgError("the openvino engine runs on the CPU only")
        try:
            import openvino as ov
        except ImportError as e:
            raise VbgError("the openvino engine needs openvino: pip install 'vbg[openvino]'") from e

        path = card.verify_file("onnx")
        self._core = ov.Core()
        _use_model_cache(self._core)
        try:
            self._model = self._core.read_model(str(path))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
            raise VbgError(f"cannot load ONNX model {path} in OpenVINO: {first}") from e
        if len(self._model.inputs) != 1:
            raise VbgError(
                f"ONNX model {path} does not match its card: {len(self._model.inputs)} inputs"
            )
        check_model_input(
            _dims(self._model.inputs[0].get_partial_shape()), card, f"ONNX model {path}"
        )
        check_model_output(
            _dims(self._model.outputs[0].get_partial_shape()), card, f"ONNX model {path}"
        )
        self._input_name = self._model.inputs[0].get_any_name()
        self._channels = card.input.channels
        self._config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or default_threads()),
        }
        self._path = path
        # (h, w) -> infer request of a model compiled for that static shape, LRU order.
        self._requests: OrderedDict[tuple[int, int], object] = OrderedDict()
        self._ov = ov
        # Per request, the array its input tensor shares memory with (kept alive here).
        self._bound: dict[tuple[int, int], np.ndarray] = {}
        # ready()'s background compiles: the size being compiled, and sizes that failed.
        self._lock = threading.Lock()
        self._compiling: dict[tuple[int, int], threading.Thread] = {}
        self._failed: set[tuple[int, int]] = set()

    def ready(self, h: int, w: int, wait: bool = False) -> bool:
        """Whether run() at (h, w) starts at once. If not, a background thread compiles
        that size (one thread per size) and this returns False until it is done; wait=True
        waits for it instead (offline work, where the same frames must give the same
        output every run). A size that failed to compile stays False (run() raises)."""
        key = (h, w)
        with self._lock:
            if key in self._requests:
                return True
            if key in self._failed:
                return False
            thread = self._compiling.get(key)
            if thread is None:
                thread = threading.Thread(
                    target=self._compile_in_background, args=(key,), daemon=True
                )
                self._compiling[key] = thread
                thread.start()
        if not wait:
            return False
        thread.join()
        with self._lock:
            return key in self._requests

    def _compile_in_background(self, key: tuple[int, int]) -> None:
        lowest_priority()
        try:
            req = self._compile(*key)
        except VbgError:
            with self._lock:
                self._failed.add(key)
        else:
            with self._lock:
                self._store(key, req)
        finally:
            with self._lock:
                self._compiling.pop(key, None)

    def _compile(self, h: int, w: int):
        model = self._model.clone()
        model.reshape({self._input_name: [1, self._channels, h, w]})
        try:
            compiled = self._core.compile_model(model, "CPU", self._config)
        except RuntimeError as e:
            raise VbgError(f"OpenVINO cannot compile {self._path} for {h}x{w}: {e}") from e
        return compiled.create_infer_request()

    def _store(self, key: tuple[int, int], req) -> None:
        """Keep a compiled size (under the lock), dropping the least recently used."""
        self._requests[key] = req
        self._requests.move_to_end(key)
        self._bound.pop(key, None)  # a new request has no input bound yet
        if len(self._requests) > MAX_CACHED_SIZES:
            old, _ = self._requests.popitem(last=False)
            self._bound.pop(old, None)

    def _request_for(self, h: int, w: int):
        key = (h, w)
        with self._lock:
            req = self._requests.get(key)
            if req is not None:
                self._requests.move_to_end(key)
                return req
            thread = self._compiling.get(key)
        if thread is not None:  # ready() started it: finish that compile, not a second
            thread.join()
            with self._lock:
                req = self._requests.get(key)
            if req is not None:
                return req
        req = self._compile(h, w)
        with self._lock:
            self._store(key, req)
        return req

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x, self._channels)
        key = (x.shape[2], x.shape[3])
        req = self._request_for(*key)
        # The segmenter hands in the same buffer every frame: its memory is bound to the
        # request once and each frame is just infer(), without infer({0: x})'s per-call
        # input dispatch (0.13 ms a frame, 4 % of the default model's inference here).
        if self._bound.get(key) is not x:
            x = np.ascontiguousarray(x)
            req.set_input_tensor(self._ov.Tensor(x, shared_memory=True))
            self._bound[key] = x
        req.infer()
        # The output tensor is the request's own buffer, overwritten by the next infer().
        return np.array(req.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def close(self) -> None:
        with self._lock:
            threads = list(self._compiling.values())
        for t in threads:  # a compile still running holds the model
            t.join()
        self._requests.clear()
        self._bound.clear()
        self._model = None


def _use_model_cache(core) -> None:
    """Point OpenVINO's own compiled-model cache at vbg's cache folder; without it (a
    read-only home) every start compiles, as before."""
    folder = cache_root() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(folder)})
    except (OSError, RuntimeError) as e:
        log.debug("no OpenVINO model cache in %s: %s", folder, e)
