"""PyTorch: rebuilds the network from the card and loads the training weights (vbg[torch]).

On CUDA ("torch-cuda") the network is made cheap to launch, because at batch 1 a small
U-Net on a big GPU is bound by kernel launches, not arithmetic (5-6 ms per 720p frame
measured on an H200 with plain fp16 autocast):
  - FP16 weights and inputs (half the memory traffic of fp32, tensor cores), channels-last
    memory layout (what cuDNN's fast convolution kernels want), `inference_mode`;
  - CUDA graphs: per input shape the whole forward pass is captured once into a graph and
    each frame replays it, one launch instead of a hundred. A graph reads from and writes
    to fixed device buffers, so a frame is copied into the static input (from a pinned host
    buffer, asynchronously, on the one stream) and the output is read from the static
    output before the next replay;
  - cuDNN autotuning per shape (frame sizes repeat).
On the CPU it runs in fp32, the slowest engine, mostly useful to check the ONNX export
against the network it came from, and as the device path's network in the tests.

`run` takes and returns NumPy (the host pipeline); `run_tensor` takes and returns tensors
on the engine's device (vbg.device_path, where the frame never leaves the GPU).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from vbg import VbgError
from vbg.card import ModelCard
from vbg.engines import check_input

log = logging.getLogger(__name__)

_NEEDS = "the torch engine needs torch and segmentation-models-pytorch: pip install 'vbg[torch]'"
MAX_GRAPHS = 4  # shapes with a captured graph kept at once (camera + a batch size or two)
WARMUP_RUNS = 3  # eager runs before capture: cuDNN picks its kernels, allocator settles


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
        "in_channels": card.input.channels,
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


class _Graph:
    """One captured forward pass: static input and output buffers on the device."""

    def __init__(self, torch, module, shape: tuple[int, ...], dtype, device) -> None:
        self.input = torch.zeros(shape, dtype=dtype, device=device).contiguous(
            memory_format=torch.channels_last
        )
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture stream, as CUDA requires
            for _ in range(WARMUP_RUNS):
                module(self.input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = module(self.input)

    def __call__(self, x):
        self.input.copy_(x)
        self.graph.replay()
        return self.output


class TorchEngine:
    """smp network in PyTorch; device "cpu" or "cuda" (FP16, channels-last, CUDA graphs)."""

    def __init__(
        self,
        card: ModelCard,
        *,
        threads: int | None = None,
        device: str | None = None,
        default_device: str = "cpu",
        cuda_graphs: bool = True,
        module=None,
    ) -> None:
        torch, _ = import_torch()
        device = device or default_device
        if device == "cuda" and not torch.cuda.is_available():
            raise VbgError("the torch engine was asked for cuda, but torch sees no CUDA GPU")
        self.device = torch.device(device)
        self.tensor_device = str(self.device)  # where run_tensor's tensors live
        self.name = "torch-cuda" if device == "cuda" else "torch"
        if threads and device == "cpu":
            # Process-wide in PyTorch: the engine is the only torch user in the runtime.
            torch.set_num_threads(threads)
        self._torch = torch
        self._channels = card.input.channels
        module = module if module is not None else build_module(card)
        if self.device.type == "cuda":
            # Frame sizes repeat, so cuDNN's per-shape autotuning pays for itself at once.
            torch.backends.cudnn.benchmark = True
            self.dtype = torch.float16
            module = module.to(self.device, dtype=self.dtype).to(memory_format=torch.channels_last)
        else:
            self.dtype = torch.float32
        self._module = module.eval()
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: OrderedDict[tuple[int, ...], _Graph] = OrderedDict()
        self._pinned: dict[str, object] = {}
        self.graph_failures = 0

    def _forward(self, t):
        """Device tensor (N, 3, h, w) in the engine's dtype -> raw output on the device."""
        torch = self._torch
        if not self.cuda_graphs:
            return self._module(t.contiguous(memory_format=torch.channels_last))
        shape = tuple(t.shape)
        g = self._graphs.get(shape)
        if g is None:
            try:
                g = _Graph(torch, self._module, shape, self.dtype, self.device)
            except RuntimeError as e:
                # A capture can fail (an op that syncs, an old driver): run eagerly from
                # then on rather than fail the frame.
                log.warning("torch-cuda: CUDA graph capture failed (%s); running eagerly", e)
                self.graph_failures += 1
                self.cuda_graphs = False
                return self._module(t.contiguous(memory_format=torch.channels_last))
            self._graphs[shape] = g
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(shape)
        return g(t)

    def run_tensor(self, x):
        """(N, 3, h, w) tensor on this engine's device -> (N, C, h, w) float32 tensor there.
        With CUDA graphs the result is copied out of the graph's static output."""
        torch = self._torch
        with torch.inference_mode():
            y = self._forward(x.to(self.device, dtype=self.dtype, non_blocking=True))
            return y.float()  # a new tensor: the graph's output buffer is reused

    def _upload(self, x: np.ndarray):
        torch = self._torch
        host = torch.from_numpy(x)
        if self.device.type != "cuda":
            return host
        buf = self._pinned.get("in")
        if buf is None or buf.shape != host.shape:
            buf = self._pinned["in"] = torch.empty(host.shape, dtype=host.dtype).pin_memory()
        buf.copy_(host)
        return buf.to(self.device, non_blocking=True)

    def run(self, x: np.ndarray) -> np.ndarray:
        check_input(x, self._channels)
        y = self.run_tensor(self._upload(x))
        # .cpu() is the sync point with the GPU: the frame needs its mask now.
        return y.cpu().numpy()

    def close(self) -> None:
        self._graphs.clear()
        self._pinned.clear()
        self._module = None
