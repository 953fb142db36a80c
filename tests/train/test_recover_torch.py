"""train recover-torch: a state dict rebuilt from a BatchNorm-folded ONNX export computes
what the original network computed, and the bundled default model runs on the torch engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tests.tiny_model import TINY_DECODER, build_tiny_unet  # noqa: E402
from train.__main__ import main  # noqa: E402
from train.export import export_onnx  # noqa: E402
from train.recover_torch import (  # noqa: E402
    build_card_model,
    compare_with_onnx,
    recover_state_dict,
    recover_torch,
)
from vbg import VbgError  # noqa: E402
from vbg.card import InputSpec, ModelCard, OutputSpec, load_card, sha256_of  # noqa: E402
from vbg.engines import create_engine  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CARD = REPO / "assets" / "models" / "default.json"


def _randomise_batchnorms(model, seed=1):
    """Non-trivial BatchNorm statistics and affine terms, so folding changes the weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


def _write_card(folder: Path, decoder=TINY_DECODER) -> Path:
    card = ModelCard(
        name="tiny",
        architecture="Unet",
        encoder="mobilenet_v2",
        decoder_channels=tuple(decoder),
        input=InputSpec(height=64, width=96),
        output=OutputSpec(),
        files={"onnx": "tiny.onnx", "torch": "tiny.pt"},
        sha256={"tiny.onnx": sha256_of(folder / "tiny.onnx"), "tiny.pt": "0" * 64},
        training={"data": "none: random weights for tests"},
    )
    return card.save(folder / "tiny.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The original network (random BN statistics) and its folded ONNX export with a card."""
    folder = tmp_path_factory.mktemp("recover")
    model = _randomise_batchnorms(build_tiny_unet(seed=3))
    export_onnx(model, folder / "tiny.onnx", 64, 96)
    return model, folder, _write_card(folder)


def test_export_folds_batchnorms(tiny):
    _, folder, _ = tiny
    ops = {n.op_type for n in onnx.load(str(folder / "tiny.onnx")).graph.node}
    assert "Conv" in ops and "BatchNormalization" not in ops


def test_recovered_model_matches_original_and_onnx(tiny):
    original, folder, card_path = tiny
    card = load_card(card_path)
    model = build_card_model(card)
    state, counts = recover_state_dict(model, folder / "tiny.onnx")
    assert counts["convs"] == counts["batchnorms"] + 1  # only the head has a plain bias
    assert set(state) == set(original.state_dict())
    # The folded weights differ from the original ones, the function must not.
    assert not torch.equal(
        state["encoder.features.0.0.weight"], original.encoder.features[0][0].weight
    )
    fresh = build_card_model(card)
    fresh.load_state_dict(state, strict=True)
    rng = np.random.default_rng(5)
    for h, w in ((64, 96), (96, 64), (128, 128)):
        x = torch.from_numpy(rng.standard_normal((1, 3, h, w)).astype(np.float32))
        with torch.inference_mode():
            diff = (fresh(x) - original(x)).abs().max().item()
        assert diff < 1e-4, (h, w, diff)
    assert compare_with_onnx(fresh, folder / "tiny.onnx", [(64, 96), (96, 64)], threads=1) < 1e-4


def test_cli_writes_weights_and_card_for_the_torch_engine(tiny, tmp_path):
    _, folder, _ = tiny
    for name in ("tiny.onnx", "tiny.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    card_path = tmp_path / "tiny.json"
    before = json.loads(card_path.read_text())
    rc = main(
        ["recover-torch", "--card", str(card_path), "--out", str(tmp_path / "tiny.pt")]
        + ["--threads", "1"]
    )
    assert rc == 0
    after = json.loads(card_path.read_text())
    assert after["sha256"]["tiny.pt"] == sha256_of(tmp_path / "tiny.pt")
    assert after["sha256"]["tiny.onnx"] == before["sha256"]["tiny.onnx"]
    before["sha256"].pop("tiny.pt")
    after["sha256"].pop("tiny.pt")
    assert after == before  # nothing else in the card changed
    assert not list(tmp_path.glob("*.tmp"))

    card = load_card(card_path)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    t, o = create_engine("torch", card, threads=1), create_engine("onnxruntime", card, threads=1)
    try:
        assert np.max(np.abs(t.run(x) - o.run(x))) < 1e-4
    finally:
        t.close()
        o.close()


def test_wrong_architecture_fails_and_writes_nothing(tiny, tmp_path):
    _, folder, _ = tiny
    (tmp_path / "tiny.onnx").write_bytes((folder / "tiny.onnx").read_bytes())
    card_path = _write_card(tmp_path, decoder=(16, 16, 16, 8, 8))
    before = card_path.read_text()
    with pytest.raises(VbgError, match="weight shapes differ"):
        recover_torch(None, card_path, threads=1)
    assert not (tmp_path / "tiny.pt").exists()
    assert card_path.read_text() == before
    assert main(["recover-torch", "--card", str(card_path)]) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # the exporter's notes on training mode
def test_unfolded_export_is_refused(tmp_path):
    """An export that kept its BatchNorm nodes is not what the tool can unfold."""
    model = build_tiny_unet(seed=0).train()
    torch.onnx.export(
        model,
        (torch.zeros(2, 3, 64, 96),),
        str(tmp_path / "tiny.onnx"),
        opset_version=17,
        dynamo=False,
        training=torch.onnx.TrainingMode.TRAINING,
        do_constant_folding=False,
    )
    card_path = _write_card(tmp_path)
    with pytest.raises(VbgError, match="BatchNormalization"):
        recover_torch(tmp_path / "tiny.onnx", card_path, threads=1)
    assert not (tmp_path / "tiny.pt").exists()


def test_default_model_torch_engine_agrees_with_onnxruntime(sample_clip):
    from vbg.metrics import image_metrics
    from vbg.refine import prob_to_frame
    from vbg.segmenter import preprocess
    from vbg.sources import VideoFileSource

    card = load_card(DEFAULT_CARD)
    card.verify_file("torch")  # the recovered weights are the ones the card records
    src = VideoFileSource(sample_clip)
    try:
        frame = next(iter(src)).image
    finally:
        src.close()
    x = preprocess(frame, card.input)
    masks, logits = {}, {}
    for name in ("torch", "onnxruntime"):
        eng = create_engine(name, card, threads=1)
        try:
            logits[name] = eng.run(x)
        finally:
            eng.close()
        prob = 1.0 / (1.0 + np.exp(-logits[name][0, 0].astype(np.float64)))
        masks[name] = prob_to_frame(prob.astype(np.float32), frame.shape[:2]) >= 0.5
    assert masks["onnxruntime"].mean() > 0.05  # a person is found at all
    assert image_metrics(masks["torch"], masks["onnxruntime"])["iou"] >= 0.99
    assert np.max(np.abs(logits["torch"] - logits["onnxruntime"])) < 1e-3
