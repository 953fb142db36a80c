"""ONNX Runtime: the default engine (part of the core install, CPU; GPU with onnxruntime-gpu).

On a GPU (`onnxruntime-gpu`, device "cuda") the session takes the TensorRT execution
provider first where its libraries load, then CUDA, then the CPU for whatever is left, and
runs through IO binding: the input is written into a device buffer made once per shape and
the output stays on the device until it is read, instead of ORT copying both per run
(`run`). `run_tensor` binds torch tensors that already live on the device (vbg.device_path),
so nothing crosses to the host at all. IO binding also works on the CPU, where the tests
check it against the plain session run.
"""

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
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        path = card.verify_file("onnx")
        self._channels = card.input.channels
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

        providers = gpu_providers(ort) if device == "cuda" else ["CPUExecutionProvider"]
        if device == "cuda":
            self.name = "onnxruntime-gpu"

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
        self._out_channels = card.output.channels
        self._fixed_batch = inputs[0].shape[0] == 1  # exported for one frame at a time
        self.providers = self._session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise VbgError(
                "onnxruntime-gpu could not start its CUDA provider (providers in use: "
                + ", ".join(self.providers)
                + "); check the CUDA and cuDNN libraries"
            )
        self._ort = ort
        self._io_device = "cuda" if device == "cuda" else "cpu"
        self.tensor_device = self._io_device  # where run_tensor's tensors live
        self.io_binding = (device == "cuda") if io_binding is None else io_binding
        self._binding = self._session.io_binding() if self.io_binding else None
        self._in_value = None  # OrtValue on the device, one per input shape

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x, self._channels)
        if self._binding is None:
            (y,) = self._session.run(self._output_names, {self._input_name: x})
        else:
            y = self._run_bound(x)
        return y if y.dtype == np.float32 else y.astype(np.float32)

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        io, ort = self._binding, self._ort
        v = self._in_value
        if v is None or tuple(v.shape()) != x.shape:
            v = self._in_value = ort.OrtValue.ortvalue_from_numpy(x, self._io_device, 0)
        else:
            v.update_inplace(x)  # host -> device into the buffer bound last time
        io.bind_ortvalue_input(self._input_name, v)
        io.bind_output(self._output_names[0], self._io_device)
        self._session.run_with_iobinding(io)
        return io.copy_outputs_to_cpu()[0]

    def run_tensor(self, x):
        """(N, 3, h, w) float32 torch tensor on this engine's device -> (N, C, h, w) torch
        tensor there, through IO binding on the tensors' own memory (no copies)."""
        import torch

        io = self._binding or self._session.io_binding()
        x = x.float().contiguous()
        n, _, h, w = x.shape
        y = torch.empty((n, self._out_channels, h, w), dtype=torch.float32, device=x.device)
        kind = "cuda" if x.device.type == "cuda" else "cpu"
        idx = x.device.index or 0
        if kind == "cuda":
            torch.cuda.current_stream().synchronize()  # ORT runs on its own stream
        # A model exported with batch 1 takes the batch one frame at a time, each bound
        # in place (a frame of a contiguous batch is itself contiguous).
        parts = [(x[i : i + 1], y[i : i + 1]) for i in range(n)] if self._fixed_batch else [(x, y)]
        for xi, yi in parts:
            io.bind_input(self._input_name, kind, idx, np.float32, tuple(xi.shape), xi.data_ptr())
            io.bind_output(
                self._output_names[0], kind, idx, np.float32, tuple(yi.shape), yi.data_ptr()
            )
            self._session.run_with_iobinding(io)
        if kind == "cuda":
            io.synchronize_outputs()  # the torch side reads y next, on its own stream
        return y

    def close(self) -> None:
        self._binding = None
        self._in_value = None
        # InferenceSession has no close(); dropping the reference frees it.
        self._session = None


def gpu_providers(ort) -> list[str]:
    """Execution providers for device "cuda", best first: TensorRT where ORT can use it,
    then CUDA, then the CPU for any node the others do not take."""
    have = ort.get_available_providers()
    if "CUDAExecutionProvider" not in have:
        raise VbgError(
            "onnxruntime has no CUDA provider here: pip install onnxruntime-gpu "
            "(and a CUDA GPU), or use --device cpu"
        )
    order = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if "TensorrtExecutionProvider" in have and tensorrt_libraries():
        order.insert(0, "TensorrtExecutionProvider")
    return [p for p in order if p in have]


def tensorrt_libraries() -> bool:
    """Whether TensorRT's runtime library loads: onnxruntime-gpu lists its TensorRT
    provider whether or not the libraries are installed, and without them it only logs."""
    import ctypes

    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so", "nvinfer_10.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False
