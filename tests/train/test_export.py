"""train export: ONNX + torch weights + model card, read back through the runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("pycocotools")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tests.train.fitutil import TINY_DECODER, tiny_config, tiny_data  # noqa: E402
from train.__main__ import main  # noqa: E402
from train.evaluate import evaluate_run  # noqa: E402
from train.fit import fit  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ann, images = tiny_data(root / "coco", n_images=24)
    run_dir = root / "run"
    fit(tiny_config(ann, images, run_dir, split=(0.5, 0.25, 0.25)))
    evaluate_run(run_dir, grid=False)
    out = root / "model"
    rc = main(
        ["export", "--run", str(run_dir), "--out", str(out), "--name", "tiny", "--threads", "1"]
    )
    assert rc == 0
    return run_dir, out


def test_card_loads_and_describes_the_model(exported):
    from vbg.card import load_card

    run_dir, out = exported
    card = load_card(out / "tiny.json")
    assert (card.architecture, card.encoder, card.decoder_channels) == (
        "Unet",
        "mobilenet_v2",
        TINY_DECODER,
    )
    assert (card.input.height, card.input.width, card.input.fit, card.input.multiple) == (
        64,
        96,
        "area",
        32,
    )
    assert card.input.color_order == "RGB" and card.input.mean == (0.485, 0.456, 0.406)
    assert (card.output.kind, card.output.threshold) == ("logits", 0.5)
    assert card.files == {"onnx": "tiny.onnx", "torch": "tiny.pt"}
    assert card.verify_file("onnx").name == "tiny.onnx"  # sha256 recorded and matching
    assert card.verify_file("torch").name == "tiny.pt"
    assert card.training["epochs"] == 1 and card.training["split_sizes"]["train"] > 0
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert card.metrics["iou"] == metrics["iou"] and card.metrics["images"] == metrics["images"]
    assert "per_image" not in card.metrics


def test_onnx_graph_has_the_runtime_contract(exported):
    _, out = exported
    model = onnx.load(str(out / "tiny.onnx"))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 17
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert (inp.name, outp.name) == ("input", "logits")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(isinstance(d, str) for d in dims[2:])  # dynamic H, W
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_runtime_engine_matches_torch_at_other_sizes(exported):
    """The ONNX file through vbg's engine vs the .pt weights in a rebuilt smp U-Net,
    at input sizes other than the export size."""
    from train.model import create_unet
    from vbg.card import load_card
    from vbg.engines import create_engine
    from vbg.metrics import image_metrics

    run_dir, out = exported
    card = load_card(out / "tiny.json")
    net = create_unet(card.architecture, card.encoder, card.decoder_channels)
    net.load_state_dict(torch.load(card.file("torch"), weights_only=True), strict=True)
    net.eval()
    engine = create_engine("onnxruntime", card, threads=1)
    try:
        rng = np.random.default_rng(0)
        for h, w in ((96, 64), (128, 160)):
            x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
            y = engine.run(x)
            with torch.inference_mode():
                ref = net(torch.from_numpy(x)).numpy()
            assert y.shape == ref.shape == (1, 1, h, w)
            assert np.abs(y - ref).max() < 1e-3
            assert image_metrics(y > 0, ref > 0)["iou"] >= 0.99
    finally:
        engine.close()

    check = json.loads((run_dir / "export_check.json").read_text())
    assert check["engine"] == "onnxruntime" and check["images"] >= 1
    assert check["iou_min"] >= 0.99 and check["max_abs_logit_diff"] < 1e-3


def test_fp16_export_is_optional(exported, tmp_path):
    from vbg.card import load_card

    run_dir, _ = exported
    rc = main(
        [
            "export",
            "--run",
            str(run_dir),
            "--out",
            str(tmp_path),
            "--fp16",
            "--check-images",
            "1",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    card = load_card(tmp_path / f"{run_dir.name}.json")  # default name: the run folder's
    assert card.files["onnx_fp16"] == f"{run_dir.name}_fp16.onnx"
    card.verify_file("onnx_fp16")
    m = onnx.load(str(card.file("onnx_fp16")))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
