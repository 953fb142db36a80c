"""train quantize: a tiny U-Net's INT8 copy (calibrated on generated images) agrees with the
fp32 model through the runtime, and its card loads and runs on the onnxruntime engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from tests.cocogen import expected_mask, make_coco  # noqa: E402
from tests.tiny_model import TINY_DECODER, build_tiny_unet  # noqa: E402
from train.__main__ import main  # noqa: E402
from train.export import export_onnx  # noqa: E402
from train.quantize import (  # noqa: E402
    FrameReader,
    choose_images,
    quantize_onnx,
    shapes_from_quantized,
)
from vbg import VbgError  # noqa: E402
from vbg.card import InputSpec, ModelCard, OutputSpec, load_card, sha256_of  # noqa: E402
from vbg.engines import create_engine  # noqa: E402
from vbg.metrics import image_metrics  # noqa: E402
from vbg.refine import prob_to_frame  # noqa: E402
from vbg.segmenter import Segmenter, preprocess  # noqa: E402

torch.set_num_threads(1)

H, W = 64, 96


def _trained_tiny_model(xs: list[np.ndarray], ys: list[np.ndarray], steps: int = 15):
    """The tiny U-Net fitted for a few steps to the generated people. A random network's
    logits all sit within a fraction of a unit of each other, so any rounding flips its
    mask; a fitted one is confident away from the edges, as a real model is (the default
    model's INT8 masks agree with fp32 at IoU 0.99)."""
    model = build_tiny_unet(seed=0).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(xs):
        by_shape.setdefault(x.shape, []).append(i)
    for _ in range(steps):
        for idx in by_shape.values():
            x = torch.from_numpy(np.concatenate([xs[i] for i in idx]))
            y = torch.from_numpy(np.stack([ys[i][None] for i in idx]).astype(np.float32))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("quantize")
    ann, images = make_coco(root / "data", n_images=12)
    spec = InputSpec(height=H, width=W)
    xs, ys = [], []
    for im in json.loads(ann.read_text())["images"]:
        x = preprocess(cv2.imread(str(images / im["file_name"])), spec)
        mask = expected_mask(ann, im["id"])
        xs.append(x)
        ys.append(cv2.resize(mask, (x.shape[3], x.shape[2]), interpolation=cv2.INTER_NEAREST))
    model_dir = root / "model"
    model_dir.mkdir()
    export_onnx(_trained_tiny_model(xs, ys), model_dir / "tiny.onnx", H, W)
    card = ModelCard(
        name="tiny",
        architecture="Unet",
        encoder="mobilenet_v2",
        decoder_channels=TINY_DECODER,
        input=spec,
        output=OutputSpec(),
        files={"onnx": "tiny.onnx"},
        sha256={"tiny.onnx": sha256_of(model_dir / "tiny.onnx")},
        training={"data": "generated people, 15 steps", "epochs": 0},
        metrics={"test": {"iou": 0.5}},
    )
    return card.save(model_dir / "tiny.json"), ann, images


def _quantize(setup, out: Path, *extra: str) -> int:
    card, ann, images = setup
    args = ["quantize", "--card", str(card), "--ann", str(ann), "--images", str(images)]
    args += ["--out", str(out), "--name", "tiny-int8", "--count", "6", "--check-images", "3"]
    return main(args + ["--threads", "1", *extra])


def test_int8_model_agrees_with_fp32_and_runs_from_its_card(setup, tmp_path):
    fp32_path, ann, images = setup
    assert _quantize(setup, tmp_path) == 0
    card = load_card(tmp_path / "tiny-int8.json")
    fp32 = load_card(fp32_path)

    # The card: its own name and file (no torch weights), the fp32 card's training record
    # plus how it was quantized, no metrics carried over from the fp32 model.
    assert card.name == "tiny-int8"
    assert card.files == {"onnx": "tiny-int8.onnx"}
    assert card.sha256 == {"tiny-int8.onnx": sha256_of(tmp_path / "tiny-int8.onnx")}
    assert card.input == fp32.input and card.output == fp32.output
    assert card.metrics == {}
    q = card.training.pop("quantization")
    assert card.training == fp32.training
    assert q["calibration"]["images"] == 6 and q["check"]["images"] == 3
    assert q["check"]["iou_mean"] >= 0.9
    assert not list(tmp_path.glob(".*tmp"))

    # The graph is really INT8: integer weights, quantize/dequantize pairs, and no Shape
    # node left reading a dequantized tensor.
    model = onnx.load(str(tmp_path / "tiny-int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)
    assert shapes_from_quantized(model) == 0

    # Through the runtime: binarised full-frame masks agree with fp32, pooled over the
    # images and on each image where fp32 finds a person of some size (a mask of a few
    # dozen pixels has an IoU that one pixel moves by percents). The tiny test model is fitted
    # for seconds on synthetic shapes, so its soft edges sit near the threshold: per image
    # 0.8 (seen 0.84 on onnxruntime 1.32), pooled 0.95.
    segs = {}
    for key, c in (("fp32", fp32), ("int8", card)):
        segs[key] = Segmenter(c, create_engine("onnxruntime", c, threads=1))
    inter = union = people = 0
    try:
        import cv2

        for im in json.loads(ann.read_text())["images"]:
            frame = cv2.imread(str(images / im["file_name"]))
            masks = {k: prob_to_frame(s(frame), frame.shape[:2]) >= 0.5 for k, s in segs.items()}
            inter += int(np.sum(masks["int8"] & masks["fp32"]))
            union += int(np.sum(masks["int8"] | masks["fp32"]))
            if masks["fp32"].mean() > 0.02:
                people += 1
                assert image_metrics(masks["int8"], masks["fp32"])["iou"] >= 0.8, im["file_name"]
    finally:
        for s in segs.values():
            s.engine.close()
    assert people >= 4  # masks worth comparing: the fitted model finds people
    assert inter / union >= 0.95


def test_keep_fp32_leaves_named_nodes_unquantized(setup, tmp_path):
    head = "/segmentation_head/segmentation_head.0/Conv"
    assert _quantize(setup, tmp_path, "--keep-fp32", head) == 0
    model = onnx.load(str(tmp_path / "tiny-int8.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    (node,) = [n for n in model.graph.node if n.name == head]
    assert inits[node.input[1]].data_type == onnx.TensorProto.FLOAT  # weights stay fp32
    q = load_card(tmp_path / "tiny-int8.json").training["quantization"]
    assert q["kept_fp32"] == [head]
    assert "over all images" in q["calibration"]["method"]


def test_mean_ranges_are_narrower_than_minmax(setup, tmp_path):
    card_path, ann, images = setup
    card = load_card(card_path)
    paths = [im["path"] for im in choose_images(ann, images, 6)]
    scales = {}
    for ranges in ("minmax", "mean"):
        out = tmp_path / f"{ranges}.onnx"
        quantize_onnx(card.file("onnx"), out, FrameReader(paths, card.input), ranges=ranges)
        inits = {t.name: t for t in onnx.load(str(out)).graph.initializer}
        scales[ranges] = {
            n.input[0]: float(onnx.numpy_helper.to_array(inits[n.input[1]]))
            for n in onnx.load(str(out)).graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits
        }
    common = set(scales["mean"]) & set(scales["minmax"])
    assert common
    # A mean of per-image ranges lies inside the range over all images.
    assert all(scales["mean"][k] <= scales["minmax"][k] * (1 + 1e-6) for k in common)
    assert any(scales["mean"][k] < scales["minmax"][k] * 0.99 for k in common)


def test_errors_are_one_line_and_write_nothing(setup, tmp_path, capsys):
    card, ann, images = setup
    assert _quantize(setup, tmp_path, "--keep-fp32", "no-such-node") == 1
    assert "no node named no-such-node" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    # The output must never replace the source model.
    args = ["quantize", "--card", str(card), "--ann", str(ann), "--images", str(images)]
    assert main(args + ["--out", str(card.parent), "--name", "tiny"]) == 1
    assert "would overwrite" in capsys.readouterr().err
    with pytest.raises(VbgError, match="does not exist"):
        choose_images(tmp_path / "missing.json", images, 3)


def test_choice_is_seeded_and_prefix_stable(setup):
    _, ann, images = setup
    a = [im["id"] for im in choose_images(ann, images, 5, seed=0)]
    assert a == [im["id"] for im in choose_images(ann, images, 5, seed=0)]
    # The calibration images stay the same whatever --check-images adds after them.
    assert [im["id"] for im in choose_images(ann, images, 8, seed=0)][:5] == a
    assert len(choose_images(ann, images, 1000)) == len(json.loads(ann.read_text())["images"])


def test_a_prior_model_is_calibrated_as_a_still_and_with_its_own_previous_answer(
    setup, tiny_prior_card
):
    """Each calibration image twice: the fourth channel "no previous frame", then the fp32
    model's own probability for the image, as the runtime feeds it back."""
    _, ann, images = setup
    card = load_card(tiny_prior_card)
    paths = [images / im["file_name"] for im in json.loads(ann.read_text())["images"][:2]]
    ref = Segmenter(card, create_engine("onnxruntime", card, threads=1))
    try:
        with pytest.raises(ValueError, match="prior_from"):
            FrameReader(paths, card.input)
        reader = FrameReader(paths, card.input, prior_from=ref)
        assert len(reader) == 4
        got = []
        while (item := reader.get_next()) is not None:
            got.append(item["input"])
        assert len(got) == 4 and all(x.shape == (1, 4, 64, 96) for x in got)
        import cv2

        for i, path in enumerate(paths):
            still, again = got[2 * i], got[2 * i + 1]
            np.testing.assert_array_equal(still[0, 3], 0.0)
            np.testing.assert_allclose(still[0, :3], again[0, :3], atol=1e-5)
            ref.reset()
            prob = ref(cv2.imread(str(path)))
            np.testing.assert_allclose(again[0, 3], 2 * prob - 1, atol=1e-6)
        reader.rewind()
        assert reader.get_next()["input"][0, 3].max() == 0.0
    finally:
        ref.engine.close()
