"""`python -m train quantize --card X.json --ann RUN/splits/train.json --images ROOT --out DIR
--name NAME`: an INT8 copy of a card's ONNX model for CPU inference, with its own card.

Static quantization with onnxruntime.quantization. The fp32 graph is first prepared with
`quant_pre_process` (symbolic shape inference, so every activation has a known type, and
ONNX-level graph optimisation); `quantize_static` then writes a QDQ graph with symmetric
per-output-channel INT8 weights and per-tensor activations: UINT8 by default (U8S8, what
onnxruntime recommends for x86, VNNI or not; `--activations int8` gives S8S8, which ran
~1.5x SLOWER than U8S8 on an AVX-512 VNNI EPYC with onnxruntime 1.32). onnxruntime's CPU
provider fuses each DequantizeLinear -> Conv -> QuantizeLinear into an integer convolution.

Calibration images are preprocessed exactly as the runtime preprocesses a frame
(`vbg.segmenter.preprocess` with the card's input spec), each at the size the runtime would
give it: the model has dynamic height/width and the min/max calibrator reduces each tensor
to its range per image before merging, so mixed sizes need no common shape (which is also
why the histogram calibrators, which stack whole activations, are not offered). Use images
of the TRAINING split: ranges fitted to the images a model is judged on would flatter it.

`--ranges minmax` (default) takes each activation's range over all images; `--ranges mean`
takes the mean over the images of their per-image min and max, which clips the rare
extremes for finer steps everywhere else. On the default model mean was the more faithful
(int8-vs-fp32 mask IoU on the validation split 0.993/0.933/0.997 for ccp/coco/portrait,
against 0.990/0.878/0.996 with minmax, and so for every calibration seed tried), but on a
small network fitted for a few steps it clipped so much that its masks fell apart (IoU
0.6): it depends on the model, and the agreement check below is what tells.

`--keep-fp32 NODE` (repeatable) leaves a node of the fp32 graph unquantized. On the default
model, convolutions at full resolution with few channels (the last decoder block and the
head) run no faster in INT8, quantizing the 3-channel first convolution (and with it the
input) costs more than it saves, and onnxruntime's UINT8 nearest-neighbour Resize is slower
than its fp32 one; keeping those in fp32 is what brings the most speed.

Measured on the default model (2-core AMD EPYC with AVX-512 VNNI, onnxruntime 1.32, the
OnnxRuntimeEngine's session options with 2 threads, p50 of 300 interleaved runs, 4 repeats):
fp32 6.1-6.3 ms at 160x288; all-INT8 (either --ranges) 5.1-5.2 ms (1.20x); with
`--ranges mean --keep-fp32` /encoder/features.0/features.0.0/Conv,
/decoder/blocks.4/conv1/conv1.0/Conv, /decoder/blocks.4/conv2/conv2.0/Conv,
/segmentation_head/segmentation_head.0/Conv and /decoder/blocks.{0..4}/Resize 4.4-4.5 ms
(1.39x; 1.41x at 256x192). Validation IoU moved by <= 0.0011 overall and per source except
coco (7 images), whose +-0.01 follows the choice of calibration images. The remaining fp32
full-resolution stage (~1.3 ms) bounds what quantization alone can gain.

After quantization, each Shape node reading a DequantizeLinear output reads the quantized
tensor instead (the same shape): the U-Net decoder sizes its upsampling from the skip
tensors' shapes, and a Shape behind a DequantizeLinear makes onnxruntime dequantize (and
transpose back out of NHWC) a whole feature map only to read its dimensions.

Before the card is written, the INT8 model is loaded through the runtime
(`create_engine("onnxruntime")`) and its binarised full-frame masks are compared with the fp32
model's on `--check-images` further images from the same file; a mean IoU below
MIN_AGREEMENT refuses the result. Measure accuracy afterwards with
`vbg eval --model DIR/NAME.json` and put the test-split numbers into the card's metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vbg import VbgError

if TYPE_CHECKING:
    import onnx

    from vbg.card import InputSpec, ModelCard
    from vbg.segmenter import Segmenter

# Mean IoU of int8 vs fp32 binarised masks under which a quantized model is refused: a
# calibration gone wrong (ranges from other preprocessing, say) falls far below it, while
# the default model's INT8 copies agree at 0.99+ on real images.
MIN_AGREEMENT = 0.9
ACTIVATIONS = ("uint8", "int8")
RANGES = ("minmax", "mean")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--card", required=True, type=Path, help="the fp32 model card (JSON)")
    p.add_argument("--ann", required=True, type=Path, help="COCO json of calibration images")
    p.add_argument(
        "--images", required=True, type=Path, help="folder the json's file_name paths are under"
    )
    p.add_argument("--out", required=True, type=Path, help="folder for NAME.onnx and NAME.json")
    p.add_argument("--name", required=True, help="file stem and card name, e.g. default-int8")
    p.add_argument("--count", type=int, default=200, help="calibration images (seeded choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image choice")
    p.add_argument(
        "--activations",
        choices=ACTIVATIONS,
        default="uint8",
        help="activation type: uint8 (U8S8, the fast one on x86) or int8 (S8S8)",
    )
    p.add_argument(
        "--ranges",
        choices=RANGES,
        default="minmax",
        help="activation range: min/max over all images, or the mean of per-image min/max",
    )
    p.add_argument(
        "--keep-fp32",
        action="append",
        default=[],
        metavar="NODE",
        help="name of an fp32-graph node to leave unquantized (repeatable)",
    )
    p.add_argument(
        "--check-images", type=int, default=16, help="further images for the int8-vs-fp32 check"
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads")


def run(args: argparse.Namespace) -> int:
    result = quantize_card(
        args.card,
        args.ann,
        args.images,
        args.out,
        args.name,
        count=args.count,
        seed=args.seed,
        activations=args.activations,
        ranges=args.ranges,
        keep_fp32=args.keep_fp32,
        check_images=args.check_images,
        threads=args.threads,
    )
    c = result["check"]
    print(f"wrote {result['onnx']} and {result['card']}")
    print(
        f"int8 vs fp32 masks on {c['images']} image(s): IoU mean {c['iou_mean']:.4f} "
        f"min {c['iou_min']:.4f}; measure it with: vbg eval --model {result['card']} ..."
    )
    return 0


# --- calibration data ----------------------------------------------------------------------


def choose_images(
    ann_file: str | Path, images_root: str | Path, count: int, seed: int = 0
) -> list[dict[str, Any]]:
    """A seeded random choice of `count` image records of a COCO json (all of them when it
    has fewer), each with its absolute path added as "path"; the choice for a larger count
    starts with the choice for a smaller one."""
    ann_file, images_root = Path(ann_file), Path(images_root)
    if not ann_file.is_file():
        raise VbgError(f"annotation file {ann_file} does not exist")
    if not images_root.is_dir():
        raise VbgError(f"images folder {images_root} does not exist")
    try:
        images = json.loads(ann_file.read_text())["images"]
        images = sorted(images, key=lambda im: im["id"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise VbgError(f"{ann_file} is not a COCO annotation file ({type(e).__name__})") from e
    if not images:
        raise VbgError(f"{ann_file} lists no images")
    # A seeded shuffle, then a prefix: more images (calibration + check) never change which
    # images come first.
    random.Random(seed).shuffle(images)
    chosen = images[:count]
    out = []
    for im in chosen:
        path = images_root / im["file_name"]
        if not path.is_file():
            raise VbgError(f"image {path} named by {ann_file} does not exist")
        out.append({**im, "path": path})
    return out


def load_bgr(path: str | Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VbgError(f"cannot read image {path}")
    return img


class FrameReader:
    """onnxruntime CalibrationDataReader over image files, each preprocessed by the runtime's
    own `preprocess` at the size the runtime would give it.

    A prior model (spec.prior) sees each image twice, as the runtime feeds it: as a still
    (no previous frame) and with `prior_from`'s own probability for it as the previous
    frame (a still camera), so both ranges of the fourth channel are calibrated."""

    def __init__(
        self,
        paths: list[Path],
        spec: InputSpec,
        input_name: str = "input",
        prior_from: Segmenter | None = None,
    ) -> None:
        if spec.prior and prior_from is None:
            raise ValueError("a prior model's calibration needs prior_from (its fp32 segmenter)")
        self._paths = list(paths)
        self._spec = spec
        self._input_name = input_name
        self._prior = prior_from if spec.prior else None
        self._pending: np.ndarray | None = None
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        from vbg.segmenter import preprocess, with_unknown_prior

        if self._pending is not None:
            x, self._pending = self._pending, None
            return {self._input_name: x}
        if self._i >= len(self._paths):
            return None
        frame = load_bgr(self._paths[self._i])
        x = with_unknown_prior(preprocess(frame, self._spec), self._spec)
        self._i += 1
        if self._prior is not None:
            self._prior.reset()
            self._prior.remember(self._prior(frame))
            self._pending = self._prior.prepare(frame).copy()
        return {self._input_name: x}

    def rewind(self) -> None:
        self._i, self._pending = 0, None

    def __len__(self) -> int:
        return len(self._paths) * (2 if self._prior is not None else 1)


# --- quantization -----------------------------------------------------------------------------


def shapes_from_quantized(model: onnx.ModelProto) -> int:
    """Points every Shape node that reads a DequantizeLinear output at that node's quantized
    input (same shape, no dequantization needed); returns how many were rewired."""
    producer = {out: node for node in model.graph.node for out in node.output}
    rewired = 0
    for node in model.graph.node:
        src = producer.get(node.input[0]) if node.op_type == "Shape" else None
        if src is not None and src.op_type == "DequantizeLinear":
            node.input[0] = src.input[0]
            rewired += 1
    return rewired


def quantize_onnx(
    src: str | Path,
    dst: str | Path,
    reader: FrameReader,
    *,
    activations: str = "uint8",
    ranges: str = "minmax",
    keep_fp32: list[str] | None = None,
) -> dict[str, Any]:
    """fp32 ONNX -> QDQ INT8 ONNX (per-channel INT8 weights), calibrated with `reader`.
    Returns what was done, for the card."""
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise VbgError("quantization needs onnxruntime and onnx: pip install 'vbg[train]'") from e

    if activations not in ACTIVATIONS:
        raise VbgError(f"activations must be one of {', '.join(ACTIVATIONS)}, not {activations!r}")
    if ranges not in RANGES:
        raise VbgError(f"ranges must be one of {', '.join(RANGES)}, not {ranges!r}")
    keep_fp32 = list(keep_fp32 or [])
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="vbg-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared))
        names = {n.name for n in onnx.load(str(prepared), load_external_data=False).graph.node}
        unknown = [n for n in keep_fp32 if n not in names]
        if unknown:
            raise VbgError(f"--keep-fp32: the model has no node named {', '.join(unknown)}")
        out_tmp = Path(tmp) / "int8.onnx"
        # The quantizer logs each skipped tensor at WARNING; none of it is the user's to act on.
        quant_log = logging.getLogger()
        level = quant_log.level
        quant_log.setLevel(logging.ERROR)
        try:
            quantize_static(
                str(prepared),
                str(out_tmp),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=keep_fp32,
                calibration_providers=["CPUExecutionProvider"],
                extra_options={
                    "CalibTensorRangeSymmetric": False,
                    # With one batch of per-image ranges this is their plain mean.
                    "CalibMovingAverage": ranges == "mean",
                },
            )
        finally:
            quant_log.setLevel(level)
        model = onnx.load(str(out_tmp))
        rewired = shapes_from_quantized(model)
        onnx.checker.check_model(model)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(dst))
    return {"keep_fp32": keep_fp32, "shape_nodes_rewired": rewired}


# --- the check and the card -------------------------------------------------------------------


def mask_agreement(
    fp32_card: ModelCard, int8_card: ModelCard, paths: list[Path], *, threads: int = 2
) -> dict[str, Any]:
    """IoU of the int8 model's binarised full-frame masks against the fp32 model's, both run
    through the runtime's engine and preprocessing (a prior model: each image's second
    frame, its own first answer as the previous frame)."""
    from vbg.engines import create_engine
    from vbg.metrics import image_metrics
    from vbg.refine import prob_to_frame
    from vbg.segmenter import Segmenter

    segs: dict[str, Segmenter] = {}
    ious: list[float] = []
    try:
        for key, card in (("fp32", fp32_card), ("int8", int8_card)):
            segs[key] = Segmenter(card, create_engine("onnxruntime", card, threads=threads))
        for p in paths:
            frame = load_bgr(p)
            masks = {}
            for k, s in segs.items():
                s.reset()
                prob = s(frame)
                if s.stateful:
                    s.remember(prob)
                    prob = s(frame)
                masks[k] = prob_to_frame(prob, frame.shape[:2]) >= 0.5
            ious.append(float(image_metrics(masks["int8"], masks["fp32"])["iou"]))
    finally:
        for s in segs.values():
            s.engine.close()
    if not ious:
        return {"images": 0, "iou_mean": 1.0, "iou_min": 1.0, "worst": None}
    worst = int(np.argmin(ious))
    return {
        "images": len(ious),
        "iou_mean": round(float(np.mean(ious)), 5),
        "iou_min": round(float(ious[worst]), 5),
        "worst": str(paths[worst]),
    }


def quantize_card(
    card_path: str | Path,
    ann_file: str | Path,
    images_root: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    count: int = 200,
    seed: int = 0,
    activations: str = "uint8",
    ranges: str = "minmax",
    keep_fp32: list[str] | None = None,
    check_images: int = 16,
    threads: int = 2,
) -> dict[str, Any]:
    """Writes OUT/NAME.onnx (INT8) and OUT/NAME.json (its card) from the card at card_path."""
    import onnxruntime

    from vbg.card import load_card, sha256_of

    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise VbgError(f"--name must be a plain file stem, not {name!r}")
    if count < 1:
        raise VbgError(f"--count must be at least 1, not {count}")
    if check_images < 0:
        raise VbgError(f"--check-images must not be negative, not {check_images}")
    src_card = load_card(card_path)
    src_onnx = src_card.verify_file("onnx")
    out_dir = Path(out_dir)
    onnx_path, card_out = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
    if card_out.resolve() == src_card.path or onnx_path.resolve() == src_onnx:
        raise VbgError(f"--out/--name would overwrite the source model {src_card.path}")

    chosen = choose_images(ann_file, images_root, count + check_images, seed)
    calib, held = chosen[:count], chosen[count:]
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_onnx = out_dir / f".{name}.onnx.tmp"
    prior_from = None
    if src_card.input.prior:
        from vbg.engines import create_engine
        from vbg.segmenter import Segmenter

        prior_from = Segmenter(src_card, create_engine("onnxruntime", src_card, threads=threads))
    try:
        done = quantize_onnx(
            src_onnx,
            tmp_onnx,
            FrameReader([im["path"] for im in calib], src_card.input, prior_from=prior_from),
            activations=activations,
            ranges=ranges,
            keep_fp32=keep_fp32,
        )
        # Through the runtime, before anything lands under its final name.
        check_card = dataclasses.replace(
            src_card, name=name, files={"onnx": str(tmp_onnx.resolve())}, sha256={}
        )
        check = mask_agreement(src_card, check_card, [im["path"] for im in held], threads=threads)
        if check["images"] and check["iou_mean"] < MIN_AGREEMENT:
            raise VbgError(
                f"the INT8 model disagrees with fp32: mean mask IoU {check['iou_mean']:.4f} < "
                f"{MIN_AGREEMENT} on {check['images']} image(s), worst {check['worst']}"
            )
        sha = sha256_of(tmp_onnx)
        os.replace(tmp_onnx, onnx_path)
    finally:
        tmp_onnx.unlink(missing_ok=True)
        if prior_from is not None:
            prior_from.engine.close()

    sources = Counter(str(im.get("source") or "unknown") for im in calib)
    quantization = {
        "tool": f"onnxruntime.quantization {onnxruntime.__version__}: quant_pre_process, then "
        "quantize_static, QDQ format (python -m train quantize)",
        "from": {"card": src_card.name, "onnx": src_card.files["onnx"]},
        "weights": "INT8, symmetric, per output channel",
        "activations": f"{activations.upper()}, per tensor",
        "calibration": {
            "method": "MinMax, "
            + (
                "mean over the images of each image's min and max"
                if ranges == "mean"
                else "min and max over all images"
            ),
            "images": len(calib),
            "images_per_source": dict(sorted(sources.items())),
            "annotations": Path(ann_file).name,
            "choice": f"seeded random choice (seed {seed})",
            "preprocessing": "vbg.segmenter.preprocess with the card's input spec, each image "
            "at the size the runtime gives it"
            + (
                "; each image twice: as a still and with the fp32 model's own answer as "
                "the previous frame"
                if src_card.input.prior
                else ""
            ),
        },
        "kept_fp32": done["keep_fp32"],
        "shape_nodes_rewired": done["shape_nodes_rewired"],
        "check": {
            "what": "IoU of int8 vs fp32 binarised full-frame masks, images not calibrated on",
            "images": check["images"],
            "iou_mean": check["iou_mean"],
            "iou_min": check["iou_min"],
        },
    }
    card = dataclasses.replace(
        src_card,
        name=name,
        files={"onnx": onnx_path.name},
        sha256={onnx_path.name: sha},
        training={**src_card.training, "quantization": quantization},
        metrics={},
        path=None,
    )
    card.save(card_out)
    return {"onnx": str(onnx_path), "card": str(card_out), "check": check}
