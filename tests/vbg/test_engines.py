"""Every registered engine on the same tiny model: same shapes, same numbers, same errors."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from vbg import VbgError, engines
from vbg.card import load_card
from vbg.engines import available_engines, create_engine, engine_names, register_engine

# Each engine's mean |sigmoid| distance from onnxruntime's. OpenVINO infers in bf16 on CPUs
# that have it, so it gets a looser bound; torch on the CPU is fp32 like onnxruntime.
TOLERANCE = {"onnxruntime": 1e-6, "torch": 1e-4, "openvino": 2e-2}
GPU_TOLERANCE = 2e-2  # fp16


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def card(tiny_card):
    return load_card(tiny_card)


def _make(name, card):
    if name not in available_engines():
        pytest.skip(f"engine {name} is not available here")
    return create_engine(name, card, threads=1)


def _x(h=64, w=96, seed=0):
    return np.random.default_rng(seed).standard_normal((1, 3, h, w)).astype(np.float32)


def _sigmoid(y):
    return 1.0 / (1.0 + np.exp(-y.astype(np.float64)))


@pytest.mark.parametrize("name", engine_names())
def test_output_shape_any_size(name, card):
    eng = _make(name, card)
    try:
        for h, w in ((64, 96), (96, 64), (64, 96)):
            y = eng.run(_x(h, w))
            assert y.shape == (1, 1, h, w)
            assert y.dtype == np.float32
            assert np.isfinite(y).all()
            assert y.std() > 0  # a real network output, not a constant
    finally:
        eng.close()


@pytest.mark.parametrize("name", engine_names())
def test_a_reused_input_buffer_is_read_afresh_every_run(name, card):
    # The segmenter writes every frame into one buffer; an engine that binds that memory
    # once (openvino) must still see each frame's contents, and a new array must not be
    # confused with the bound one.
    eng = _make(name, card)
    try:
        fresh = [eng.run(_x(seed=s)).copy() for s in (1, 2, 3)]
        buf = _x(seed=1)
        got = [eng.run(buf).copy()]
        np.copyto(buf, _x(seed=2))
        got.append(eng.run(buf).copy())
        got.append(eng.run(_x(seed=3)).copy())
        np.copyto(buf, _x(seed=1))
        got.append(eng.run(buf).copy())
        for g, want in zip(got, [*fresh, fresh[0]], strict=True):
            np.testing.assert_allclose(g, want, rtol=0, atol=1e-5)
        assert np.abs(fresh[0] - fresh[1]).max() > 1e-3  # the inputs do differ
        wide = np.zeros((1, 3, 64, 192), np.float32)
        wide[..., ::2] = _x(seed=2)
        np.testing.assert_allclose(eng.run(wide[..., ::2]), fresh[1], rtol=0, atol=1e-5)
    finally:
        eng.close()


@pytest.mark.parametrize("name", engine_names())
def test_engines_agree_with_onnxruntime(name, card):
    ref_engine = create_engine("onnxruntime", card, threads=1)
    eng = _make(name, card)
    try:
        for h, w in ((64, 96), (128, 64)):
            x = _x(h, w, seed=h + w)
            ref = _sigmoid(ref_engine.run(x))
            got = _sigmoid(eng.run(x))
            tol = TOLERANCE.get(name, GPU_TOLERANCE)
            assert np.abs(got - ref).mean() < tol, name
            assert np.abs(got - ref).max() < max(10 * tol, 0.05), name
    finally:
        eng.close()
        ref_engine.close()


@pytest.mark.parametrize("name", engine_names())
def test_run_rejects_bad_input(name, card):
    eng = _make(name, card)
    with pytest.raises(TypeError):
        eng.run(_x().astype(np.float64))
    with pytest.raises(ValueError):
        eng.run(np.zeros((1, 4, 64, 96), np.float32))
    with pytest.raises(ValueError):
        eng.run(np.zeros((3, 64, 96), np.float32))


def test_torch_matches_the_network_it_was_built_from(card):
    torch = pytest.importorskip("torch")
    from tests.tiny_model import build_tiny_unet

    eng = _make("torch", card)
    x = _x()
    with torch.no_grad():
        want = build_tiny_unet().eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(eng.run(x), want, atol=1e-5)


def test_onnxruntime_workers_sleep_unless_asked_to_spin(card):
    from vbg.engines.onnxruntime_engine import OnnxRuntimeEngine

    key = "session.intra_op.allow_spinning"
    quiet = OnnxRuntimeEngine(card, threads=2)
    assert quiet._session.get_session_options().get_session_config_entry(key) == "0"
    spinning = OnnxRuntimeEngine(card, threads=2, spinning=True)
    assert spinning._session.get_session_options().get_session_config_entry(key) == "1"
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    np.testing.assert_array_equal(quiet.run(x), spinning.run(x))


def test_unknown_engine_lists_valid_names(card):
    with pytest.raises(VbgError) as e:
        create_engine("tensorflow", card)
    msg = str(e.value)
    assert "unknown engine 'tensorflow'" in msg
    for n in ["auto", *engine_names()]:
        assert n in msg


def test_unknown_device(card):
    with pytest.raises(VbgError, match="unknown device"):
        create_engine("onnxruntime", card, device="tpu")


def test_cpu_only_engine_refuses_cuda(card):
    with pytest.raises(VbgError, match="cannot run on cuda"):
        create_engine("openvino", card, device="cuda")


@pytest.fixture
def registry(monkeypatch):
    """The real registry, restored after the test."""
    monkeypatch.setattr(engines, "_REGISTRY", dict(engines._REGISTRY))
    return engines._REGISTRY


class _Fake:
    def __init__(self, name):
        self.name = name

    def run(self, x):
        return np.zeros((1, 1, *x.shape[2:]), np.float32)

    def close(self):
        pass


def test_auto_picks_highest_priority_available(registry, card, caplog):
    def fake(name):
        return lambda card, *, threads=None, device=None: _Fake(name)

    register_engine(
        "fake-fastest", fake("fake-fastest"), priority=1000, available=lambda: False, extra="x"
    )
    register_engine("fake-fast", fake("fake-fast"), priority=999, available=lambda: True, extra="x")
    register_engine("fake-slow", fake("fake-slow"), priority=998, available=lambda: True, extra="x")

    def broken():
        raise OSError("driver missing")

    register_engine("fake-broken", fake("fake-broken"), priority=1001, available=broken, extra="x")
    assert engine_names()[:4] == ["fake-broken", "fake-fastest", "fake-fast", "fake-slow"]
    assert available_engines()[:2] == ["fake-fast", "fake-slow"]
    with caplog.at_level(logging.INFO, logger="vbg.engines"):
        eng = create_engine("auto", card)
    assert eng.name == "fake-fast"
    assert "engine: fake-fast" in caplog.text


def test_auto_with_device_filters_engines(registry, card):
    register_engine(
        "fake-gpu",
        lambda card, *, threads=None, device=None: _Fake("fake-gpu"),
        priority=1000,
        available=lambda: True,
        extra="x",
        devices=("cuda",),
    )
    assert create_engine("auto", card, device="cuda").name == "fake-gpu"
    assert create_engine("auto", card, device="cpu").name != "fake-gpu"


def test_auto_real_registry_picks_first_available(card):
    eng = create_engine("auto", card, threads=1)
    try:
        assert eng.name == available_engines()[0]
    finally:
        eng.close()


def test_unavailable_engine_names_its_extra(registry, card):
    register_engine(
        "fake-off", lambda *a, **k: None, priority=1, available=lambda: False, extra="zzz"
    )
    with pytest.raises(VbgError, match=r"pip install 'vbg\[zzz\]'"):
        create_engine("fake-off", card)


def test_no_engine_at_all(registry, card):
    registry.clear()
    with pytest.raises(VbgError, match="no inference engine"):
        create_engine("auto", card)


# --- the card must match the weights -----------------------------------------------------


ONNX_ENGINES = ["onnxruntime", "openvino"]


@pytest.mark.parametrize("name", ONNX_ENGINES)
def test_sha256_mismatch(name, card):
    bad = dataclasses.replace(card, sha256={"tiny.onnx": "0" * 64})
    if name not in available_engines():
        pytest.skip(f"{name} not available")
    with pytest.raises(VbgError, match="does not match its card"):
        create_engine(name, bad)


def _copy_model(tiny_card: Path, tmp_path: Path, **changes) -> Path:
    for f in tiny_card.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    d = json.loads(tiny_card.read_text())
    d.update(changes)
    out = tmp_path / "tiny.json"
    out.write_text(json.dumps(d))
    return out


@pytest.mark.parametrize(
    "changes",
    [{"decoder_channels": [32, 16, 8, 8, 8]}, {"encoder": "resnet18"}],
    ids=["decoder", "encoder"],
)
def test_state_dict_mismatch(changes, tiny_card, tmp_path):
    c = load_card(_copy_model(tiny_card, tmp_path, **changes))
    if "torch" not in available_engines():
        pytest.skip("torch not available")
    with pytest.raises(VbgError, match="does not match its card"):
        create_engine("torch", c)


def test_missing_weights_file(tiny_card, tmp_path):
    c = load_card(_copy_model(tiny_card, tmp_path))
    (tmp_path / "tiny.onnx").unlink()
    with pytest.raises(VbgError, match="does not exist"):
        create_engine("onnxruntime", c)


@pytest.mark.parametrize("name", ONNX_ENGINES)
def test_corrupt_onnx(name, tiny_card, tmp_path):
    c = load_card(_copy_model(tiny_card, tmp_path, sha256={}))
    (tmp_path / "tiny.onnx").write_bytes(b"this is not a protobuf" * 10)
    if name not in available_engines():
        pytest.skip(f"{name} not available")
    with pytest.raises(VbgError, match="cannot load ONNX model"):
        create_engine(name, c)


def _static_onnx(path: Path, c: int, h: int | None, w: int | None) -> None:
    """A one-layer model (1x1 conv, c -> 1 channels) with the given input shape."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    dims = [1, c, h if h is not None else "height", w if w is not None else "width"]
    odims = [1, 1, dims[2], dims[3]]
    weight = numpy_helper.from_array(np.full((1, c, 1, 1), 0.5, np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"])],
        "static",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, odims)],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _card_for(tmp_path: Path, fit: str = "area") -> Path:
    d = {
        "name": "static",
        "architecture": "Unet",
        "encoder": "none",
        "input": {"height": 32, "width": 64, "fit": fit},
        "files": {"onnx": "m.onnx"},
    }
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize("name", ONNX_ENGINES)
@pytest.mark.parametrize(
    ("c", "h", "w", "fit", "error"),
    [
        (3, 48, 48, "stretch", "fixed input 48x48, card says 32x64"),
        (3, 32, 64, "area", "fixed input size 32x64 but its card says fit='area'"),
        (4, None, None, "area", "4 input channels"),
        (3, 32, 64, "stretch", None),
        (3, None, None, "area", None),
    ],
)
def test_onnx_input_checked_against_card(name, c, h, w, fit, error, tmp_path):
    if name not in available_engines():
        pytest.skip(f"{name} not available")
    _static_onnx(tmp_path / "m.onnx", c, h, w)
    card = load_card(_card_for(tmp_path, fit))
    if error:
        with pytest.raises(VbgError, match=error.replace("(", r"\(").replace(")", r"\)")):
            create_engine(name, card, threads=1)
        return
    eng = create_engine(name, card, threads=1)
    x = np.ones((1, 3, 32, 64), np.float32)
    np.testing.assert_allclose(eng.run(x), np.full((1, 1, 32, 64), 1.5), rtol=1e-2)


# --- tensorrt: real only with torch-tensorrt and a GPU ------------------------------------


def test_tensorrt_precision_settings_follow_installed_version(monkeypatch):
    torch = pytest.importorskip("torch")
    from vbg.engines.tensorrt_engine import precision_kwargs, settings_fields

    @dataclasses.dataclass
    class Old:
        enabled_precisions: set = dataclasses.field(default_factory=set)

    @dataclasses.dataclass
    class New:
        use_explicit_typing: bool = True

    cases = ((Old, {"enabled_precisions": {torch.half}}), (New, {"use_explicit_typing": True}))
    for settings, want in cases:
        dynamo = types.ModuleType("torch_tensorrt.dynamo")
        dynamo.CompilationSettings = settings
        trt = types.ModuleType("torch_tensorrt")
        trt.dynamo = dynamo
        monkeypatch.setitem(sys.modules, "torch_tensorrt", trt)
        monkeypatch.setitem(sys.modules, "torch_tensorrt.dynamo", dynamo)
        assert precision_kwargs(torch, settings_fields(trt)) == want


def test_tensorrt_absent_is_a_clear_error(card):
    if "tensorrt" in available_engines():
        pytest.skip("torch-tensorrt is installed here")
    with pytest.raises(VbgError, match=r"vbg\[gpu\]"):
        create_engine("tensorrt", card)
