"""`python -m train recover-torch --card X.json [--onnx X.onnx] [--out X.pt]`: rebuilds the
PyTorch state dict of a model card's network from its ONNX file, for when the .pt file the
torch and TensorRT engines load has been lost.

The ONNX files this project writes come from torch.onnx.export (TorchScript exporter, eval
mode, constant folding), which fuses every BatchNorm into the convolution before it:

    W' = W * gamma / sqrt(var + eps)        B' = (b - mean) * gamma / sqrt(var + eps) + beta

The original BatchNorm statistics cannot be separated out of W' and B' again, but they need
not be: any state dict that computes the same function will do. So each convolution gets W'
and each BatchNorm after one becomes a per-channel shift by B' (mean 0, var 1 - eps so that
sqrt(var + eps) = 1, gamma 1, beta B'); a convolution with a bias and no BatchNorm (the
segmentation head) gets B' as its bias. That model equals the ONNX graph up to float rounding.

Convolutions are matched by order: the ONNX exporter emits nodes in the order the forward
pass ran them, which forward hooks on the rebuilt network record. Each pair must agree on
weight shape, stride, padding, dilation and groups; every ONNX initializer must be consumed
and every tensor of the state dict written, or the tool stops. Before anything is written,
the rebuilt network is run against onnxruntime on random inputs of two sizes, and a logit
difference above MAX_LOGIT_DIFF refuses the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vbg import VbgError

if TYPE_CHECKING:
    import torch

    from vbg.card import ModelCard

# fp32 rounding of fused vs. unfused arithmetic stays around 1e-5 on logits of magnitude ~10;
# a wrongly matched layer moves them by whole units.
MAX_LOGIT_DIFF = 1e-3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--card", required=True, type=Path, help="the model card (JSON)")
    p.add_argument("--onnx", type=Path, help="the fp32 ONNX file (default: the card's 'onnx' file)")
    p.add_argument(
        "--out", type=Path, help="the state dict to write (default: the card's 'torch' file)"
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the check")


def run(args: argparse.Namespace) -> int:
    result = recover_torch(args.onnx, args.card, args.out, threads=args.threads)
    print(
        f"wrote {result['out']} ({result['convs']} convolutions, {result['batchnorms']} "
        f"BatchNorms) and updated {result['card']}"
    )
    sizes = ", ".join(f"{h}x{w}" for h, w in result["sizes"])
    print(f"torch vs onnxruntime on {sizes}: max |logit diff| {result['max_abs_logit_diff']:.2e}")
    return 0


# --- the network's convolutions, in execution order -------------------------------------


@dataclasses.dataclass
class ConvSlot:
    """One nn.Conv2d as the forward pass ran it, and the BatchNorm2d fed directly by it."""

    name: str
    conv: torch.nn.Conv2d
    bn_name: str | None = None
    bn: torch.nn.BatchNorm2d | None = None


def trace_convs(model: torch.nn.Module, height: int = 64, width: int = 64) -> list[ConvSlot]:
    """Conv2d modules in the order a forward pass calls them, each with the BatchNorm2d
    whose input is exactly that convolution's output tensor (None when there is none)."""
    import torch

    slots: list[ConvSlot] = []
    by_output: dict[int, ConvSlot] = {}
    keep: list[torch.Tensor] = []  # holds outputs alive so that their id() stays unique
    seen: set[int] = set()

    def conv_hook(name: str):
        def hook(module, inputs, output):
            if id(module) in seen:
                raise VbgError(f"convolution {name} runs twice in one forward pass; unsupported")
            seen.add(id(module))
            slot = ConvSlot(name, module)
            slots.append(slot)
            by_output[id(output)] = slot
            keep.append(output)

        return hook

    def bn_hook(name: str):
        def hook(module, inputs, output):
            slot = by_output.get(id(inputs[0]))
            if slot is None:
                raise VbgError(f"BatchNorm {name} does not directly follow a convolution")
            if slot.bn is not None:
                raise VbgError(f"convolution {slot.name} feeds two BatchNorms; unsupported")
            slot.bn_name, slot.bn = name, module

        return hook

    handles = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook(name)))
        elif isinstance(m, torch.nn.BatchNorm2d):
            handles.append(m.register_forward_hook(bn_hook(name)))
        elif isinstance(m, torch.nn.modules.conv._ConvNd | torch.nn.modules.batchnorm._NormBase):
            raise VbgError(f"layer {name} ({type(m).__name__}) is not supported by recover-torch")
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return slots


# --- the ONNX graph's convolutions ---------------------------------------------------------


@dataclasses.dataclass
class OnnxConv:
    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    attrs: dict[str, Any]


def onnx_convs(path: Path) -> list[OnnxConv]:
    """The Conv nodes of an ONNX file in graph order, with their constant weights and bias.

    Stops on anything the fused-export assumption does not cover: a BatchNormalization node
    (an export without folding), a Conv whose weight is computed at run time, or a weight
    initializer that no Conv consumes (a layer this tool would silently drop).
    """
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except (OSError, DecodeError) as e:
        raise VbgError(f"cannot read ONNX file {path}: {e}".splitlines()[0]) from e
    graph = model.graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    tensors[node.output[0]] = numpy_helper.to_array(a.t)
    for node in graph.node:
        if node.op_type == "BatchNormalization":
            raise VbgError(
                f"{path} has BatchNormalization nodes (exported without constant folding or in "
                "training mode); recover-torch expects BatchNorms fused into the convolutions"
            )
    convs: list[OnnxConv] = []
    used: set[str] = set()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        names = list(node.input[1:])
        for n in names:
            if n and n not in tensors:
                raise VbgError(
                    f"{path}: Conv {node.name} takes a weight computed at run time ({n})"
                )
        used.update(n for n in names if n)
        w = tensors[names[0]].astype(np.float32)
        b = tensors[names[1]].astype(np.float32) if len(names) > 1 and names[1] else None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        convs.append(OnnxConv(node.name or f"Conv#{len(convs)}", w, b, attrs))
    # Float initializers hold the weights; int64 ones are shapes and indices for Resize and co.
    left = sorted(
        n
        for n in (t.name for t in graph.initializer)
        if n not in used and tensors[n].dtype.kind == "f" and tensors[n].size > 1
    )
    if left:
        raise VbgError(
            f"{path} holds {len(left)} weight tensor(s) outside convolutions (e.g. {left[0]} "
            f"{tuple(tensors[left[0]].shape)}); recover-torch handles only Conv(+BatchNorm) layers"
        )
    if not convs:
        raise VbgError(f"{path} has no Conv nodes")
    return convs


def _check_pair(slot: ConvSlot, oc: OnnxConv) -> None:
    conv = slot.conv
    where = f"torch {slot.name} vs ONNX {oc.name}"
    if tuple(oc.weight.shape) != tuple(conv.weight.shape):
        raise VbgError(
            f"{where}: weight shapes differ ({tuple(conv.weight.shape)} vs "
            f"{tuple(oc.weight.shape)}); is the card's architecture the ONNX file's?"
        )
    want = {
        "strides": list(conv.stride),
        "dilations": list(conv.dilation),
        "group": conv.groups,
    }
    if isinstance(conv.padding, tuple):
        want["pads"] = [*conv.padding, *conv.padding]
    for key, value in want.items():
        got = oc.attrs.get(key)
        if got is not None and list(np.atleast_1d(got)) != list(np.atleast_1d(value)):
            raise VbgError(f"{where}: {key} differ ({value} vs {got})")


# --- rebuilding ---------------------------------------------------------------------------


def build_card_model(card: ModelCard) -> torch.nn.Module:
    """The card's network with random weights, exactly as the torch engine builds it."""
    from vbg.engines.torch_engine import import_torch

    _, smp = import_torch()
    kwargs: dict[str, Any] = {
        "encoder_name": card.encoder,
        "encoder_weights": None,
        "classes": card.output.channels,
    }
    if card.decoder_channels:
        kwargs["decoder_channels"] = tuple(card.decoder_channels)
    try:
        if card.architecture.lower() == "unet":
            return smp.Unet(**kwargs).eval()
        return smp.create_model(arch=card.architecture, **kwargs).eval()
    except (KeyError, ValueError, TypeError) as e:
        raise VbgError(f"cannot build {card.architecture}/{card.encoder} from the card: {e}") from e


def recover_state_dict(
    model: torch.nn.Module, onnx_path: Path
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Loads the ONNX file's fused weights into `model` (in place) and returns its state
    dict, plus counts of convolutions and BatchNorms rewritten."""
    import torch

    slots = trace_convs(model)
    convs = onnx_convs(onnx_path)
    if len(slots) != len(convs):
        raise VbgError(
            f"{onnx_path} has {len(convs)} convolutions, the card's network {len(slots)}; "
            "is the card's architecture the ONNX file's?"
        )
    written: set[str] = set()
    n_bn = 0
    with torch.no_grad():
        for slot, oc in zip(slots, convs, strict=True):
            _check_pair(slot, oc)
            conv = slot.conv
            out_ch = conv.weight.shape[0]
            bias = oc.bias if oc.bias is not None else np.zeros(out_ch, np.float32)
            conv.weight.copy_(torch.from_numpy(oc.weight))
            written.add(f"{slot.name}.weight")
            if slot.bn is not None:
                bn = slot.bn
                if bn.num_features != out_ch or not bn.affine or not bn.track_running_stats:
                    raise VbgError(f"BatchNorm {slot.bn_name} cannot take the fused shift")
                # The shift lives in the BatchNorm; a conv bias before it stays zero.
                if conv.bias is not None:
                    conv.bias.zero_()
                    written.add(f"{slot.name}.bias")
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(bias))
                written.update(
                    f"{slot.bn_name}.{k}" for k in ("running_mean", "running_var", "weight", "bias")
                )
                n_bn += 1
            elif conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(bias))
                written.add(f"{slot.name}.bias")
            elif np.any(bias != 0):
                raise VbgError(
                    f"ONNX {oc.name} has a bias, torch {slot.name} has neither a bias nor a "
                    "BatchNorm to hold it"
                )
    state = model.state_dict()
    # num_batches_tracked only counts training steps; inference never reads it.
    missing = sorted(
        k for k in state if k not in written and not k.endswith(".num_batches_tracked")
    )
    if missing:
        raise VbgError(
            f"{len(missing)} tensor(s) of the card's network have no source in {onnx_path} "
            f"(e.g. {missing[0]}); recover-torch handles only Conv(+BatchNorm) layers"
        )
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    return state, {"convs": len(slots), "batchnorms": n_bn}


def _check_sizes(onnx_path: Path, card: ModelCard) -> list[tuple[int, int]]:
    """Two input sizes for the check: the card's and a portrait one where H/W are dynamic."""
    import onnx

    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in onnx.load(str(onnx_path), load_external_data=False)
        .graph.input[0]
        .type.tensor_type.shape.dim
    ]
    if len(dims) == 4 and dims[2] and dims[3]:
        return [(dims[2], dims[3])]
    m = card.input.multiple
    h = -(-card.input.height // m) * m
    w = -(-card.input.width // m) * m
    # The transposed size runs every layer on a different shape (a portrait frame).
    return [(h, w), (w, h + m if w == h else h)]


def compare_with_onnx(
    model: torch.nn.Module,
    onnx_path: Path,
    sizes: list[tuple[int, int]],
    *,
    threads: int = 2,
    seed: int = 0,
) -> float:
    """max |logit difference| between `model` and onnxruntime on random inputs of `sizes`
    (two seeds per size when there is only one size)."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    runs = sizes if len(sizes) > 1 else sizes * 2
    worst = 0.0
    model.eval()
    for h, w in runs:
        x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
        (y_onnx,) = sess.run(None, {name: x})
        with torch.inference_mode():
            y_torch = model(torch.from_numpy(x)).float().numpy()
        if y_onnx.shape != y_torch.shape:
            raise VbgError(f"output shapes differ: torch {y_torch.shape}, ONNX {y_onnx.shape}")
        worst = max(worst, float(np.max(np.abs(y_onnx.astype(np.float32) - y_torch))))
    return worst


def recover_torch(
    onnx_path: str | Path | None,
    card_path: str | Path,
    out_path: str | Path | None = None,
    *,
    threads: int = 2,
) -> dict[str, Any]:
    """Rebuilds the card's state dict from the ONNX file, checks it against onnxruntime,
    writes it atomically to `out_path` and records it (files.torch, sha256) in the card."""
    import torch

    from vbg.card import load_card, sha256_of

    card = load_card(card_path)
    assert card.path is not None
    card_dir = card.path.parent
    onnx_path = Path(onnx_path).resolve() if onnx_path else card.file("onnx")
    if not onnx_path.is_file():
        raise VbgError(f"ONNX file {onnx_path} does not exist")
    if card.files.get("onnx") and onnx_path == card.file("onnx"):
        card.verify_file("onnx")  # the card's own ONNX file: it must be the one it describes
    if out_path is None:
        out_path = card_dir / card.files.get("torch", f"{card.name}.pt")
    out_path = Path(out_path).resolve()
    if out_path.suffix == ".onnx" or out_path == onnx_path:
        raise VbgError(f"--out {out_path} would overwrite the ONNX file")

    model = build_card_model(card)
    state, counts = recover_state_dict(model, onnx_path)
    sizes = _check_sizes(onnx_path, card)
    diff = compare_with_onnx(model, onnx_path, sizes, threads=threads)
    if not diff < MAX_LOGIT_DIFF:
        raise VbgError(
            f"the rebuilt network disagrees with {onnx_path.name}: max |logit diff| "
            f"{diff:.3g} >= {MAX_LOGIT_DIFF}; nothing written"
        )

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out_path)

    # The card names files relative to itself; keep every other field as it was.
    rel = Path(os.path.relpath(out_path, card_dir)).as_posix()
    files = {**card.files, "torch": rel}
    sha = {**card.sha256, rel: sha256_of(out_path)}
    old = card.files.get("torch")
    if old and old != rel:
        sha.pop(old, None)
    dataclasses.replace(card, files=files, sha256=sha).save(card.path)
    return {
        "out": out_path,
        "card": card.path,
        "sizes": sizes,
        "max_abs_logit_diff": diff,
        **counts,
    }
