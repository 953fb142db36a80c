"""ONNX Runtime: the default engine (part of the core install, CPU; CUDA with onnxruntime-gpu)."""

from __future__ import annotations

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard
from vbg.engines import check_input, check_model_input, check_model_output, default_threads


def _dims(shape) -> list[int | None]:
    # ORT reports dynamic axes as strings ("height") or None.
    return [d if isinstance(d, int) else None for d in shape]


class OnnxRuntimeEngine:
    """Runs card.file("onnx") with one InferenceSession.

    The exported model has dynamic height/width, so one session serves every frame size.
    """

    name = "onnxruntime"

    def __init__(
        self,
        card: ModelCard,
        *,
        threads: int | None = None,
        device: str | None = None,
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        path = card.verify_file("onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        # One small graph per frame: parallelism between operators only adds overhead.
        opts.inter_op_num_threads = 1
        # ORT's intra-op workers spin (busy-wait) between parallel sections and after a run,
        # by default. Per frame, the run is followed by smoothing and compositing, whose
        # OpenCV threads then compete with spinning workers for the same cores. Measured on
        # 2 cores (default model, 720p, full pipeline, same run): sleeping workers gave
        # 104 FPS at 17.2 CPU ms/frame against 98 FPS at 19.7 (compositing p50 1.4 vs
        # 2.5 ms), and under load from other processes spinning pushed inference p50 from
        # ~9 to ~17 ms. A sleeping worker costs a wake-up (microseconds) instead.
        # spinning=True restores ORT's default.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # ALL includes the NCHWc layout transform: ~1.5x faster convolutions than EXTENDED
        # on the default model (Conv is >90% of the run time).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: its warnings are not the user's to act on

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise VbgError(
                    "onnxruntime has no CUDA provider here: install onnxruntime-gpu "
                    "(and a CUDA GPU), or use --device cpu"
                )
            providers.insert(0, "CUDAExecutionProvider")
            self.name = "onnxruntime-cuda"

        errors = (
            ort_state.Fail,
            ort_state.InvalidProtobuf,
            ort_state.InvalidGraph,
            ort_state.InvalidArgument,
            ort_state.NoSuchFile,
            ort_state.RuntimeException,
        )
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except errors as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise VbgError(f"cannot load ONNX model {path}: {first}") from e

        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise VbgError(
                f"ONNX model {path} does not match its card: {len(inputs)} inputs, expected 1"
            )
        check_model_input(_dims(inputs[0].shape), card, f"ONNX model {path}")
        check_model_output(_dims(outputs[0].shape), card, f"ONNX model {path}")
        if inputs[0].type != "tensor(float)":
            raise VbgError(
                f"ONNX model {path} does not match its card: input type {inputs[0].type}, "
                "expected tensor(float)"
            )
        self._input_name = inputs[0].name
        self._output_names = [outputs[0].name]
        self.providers = self._session.get_providers()

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x)
        (y,) = self._session.run(self._output_names, {self._input_name: x})
        return y if y.dtype == np.float32 else y.astype(np.float32)

    def close(self) -> None:
        # InferenceSession has no close(); dropping the reference frees it.
        self._session = None
