"""The GPU engines' logic without a GPU: the compiled-engine cache, TensorRT's
compile / save / load / fall-back flow (with a stand-in for torch-tensorrt, which cannot be
installed here), engine selection and its messages, IO binding, and `vbg info`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import types

import numpy as np
import pytest

import vbg.engines as engines
from vbg import VbgError
from vbg.card import load_card
from vbg.engines.cache import EngineCache, make_key

KEY_ARGS = dict(
    engine="tensorrt",
    gpu="NVIDIA H200",
    capability=(9, 0),
    versions={"torch": "2.11", "torch_tensorrt": "2.11", "tensorrt": "10.13"},
    precision="fp16",
    shape=(1, 3, 160, 288),
    weights_sha256="ab" * 32,
)


# --- cache keys ------------------------------------------------------------------------


def test_every_field_of_the_key_changes_the_cache_entry():
    base = make_key(**KEY_ARGS)
    assert make_key(**KEY_ARGS) == base and make_key(**KEY_ARGS).digest == base.digest
    changes = {
        "gpu": "NVIDIA L40",
        "capability": (8, 9),
        "versions": {**KEY_ARGS["versions"], "tensorrt": "10.14"},
        "precision": "fp32",
        "shape": (1, 3, 192, 256),
        "weights_sha256": "cd" * 32,
    }
    digests = {base.digest}
    for field, value in changes.items():
        other = make_key(**{**KEY_ARGS, field: value})
        assert other.digest not in digests, field
        digests.add(other.digest)
    assert base.filename().startswith("tensorrt-fp16-160x288-b1-")


def test_cache_lookup_store_and_atomic_failure(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    key = make_key(**KEY_ARGS)
    assert cache.lookup(key) is None
    path = cache.store(key, lambda p: p.write_bytes(b"program"))
    assert cache.lookup(key) == path and path.read_bytes() == b"program"
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["gpu"] == "NVIDIA H200" and manifest["versions"]["tensorrt"] == "10.13"
    [entry] = cache.entries()
    assert entry["file"] == str(path) and entry["bytes"] == 7

    # A different key (a new TensorRT) misses, though the folder holds an entry.
    newer = make_key(**{**KEY_ARGS, "versions": {**KEY_ARGS["versions"], "tensorrt": "11"}})
    assert cache.lookup(newer) is None

    def broken(p):
        p.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.store(newer, broken)
    assert cache.lookup(newer) is None
    assert sorted(p.name for p in cache.folder.iterdir()) == sorted(
        [path.name, path.with_suffix(".json").name]
    )  # nothing half-written left behind

    # A manifest that disagrees with its key (edited, or copied from elsewhere) is refused.
    path.with_suffix(".json").write_text(json.dumps({**manifest, "gpu": "other"}))
    assert cache.lookup(key) is None


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    from vbg.engines.cache import engine_cache_dir

    monkeypatch.setenv("VBG_CACHE_DIR", str(tmp_path / "c"))
    assert engine_cache_dir() == tmp_path / "c" / "engines"
    monkeypatch.delenv("VBG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert engine_cache_dir() == tmp_path / "x" / "vbg" / "engines"


# --- TensorRT with a stand-in torch_tensorrt ----------------------------------------------


class FakeTorchTensorRT(types.ModuleType):
    """Records compile/save/load calls. compile returns the module itself; save writes a
    small file naming it; load finds it again. Enough to drive vbg's flow around it."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__("torch_tensorrt")
        self.__version__ = "0.0-test"
        self.fail = fail
        self.compiled: list[dict] = []
        self.saved: list[str] = []
        self.loaded: list[str] = []
        self.programs: dict[str, object] = {}

        @dataclasses.dataclass
        class CompilationSettings:
            use_explicit_typing: bool = True

        self.dynamo = types.ModuleType("torch_tensorrt.dynamo")
        self.dynamo.CompilationSettings = CompilationSettings

    def compile(self, module, ir="dynamo", arg_inputs=None, **kwargs):
        if self.fail:
            raise RuntimeError("Unsupported operator: aten::fancy\nmore detail")
        self.compiled.append({"ir": ir, "shape": tuple(arg_inputs[0].shape), **kwargs})
        return module

    def save(self, module, path, output_format="exported_program", arg_inputs=None):
        token = f"program-{len(self.programs)}"
        self.programs[token] = module
        with open(path, "w") as f:
            f.write(token)
        self.saved.append(path)

    def load(self, path):
        with open(path) as f:
            token = f.read()
        if token not in self.programs:
            raise RuntimeError("not a serialized program")
        self.loaded.append(path)
        module = self.programs[token]
        return types.SimpleNamespace(module=lambda: module)


@pytest.fixture
def fake_trt(monkeypatch):
    pytest.importorskip("torch")
    trt = FakeTorchTensorRT()
    monkeypatch.setitem(sys.modules, "torch_tensorrt", trt)
    monkeypatch.setitem(sys.modules, "torch_tensorrt.dynamo", trt.dynamo)
    return trt


def _trt_engine(card, cache, messages, **kw):
    from vbg.engines.tensorrt_engine import TensorRTEngine

    return TensorRTEngine(
        card,
        cache=cache,
        torch_device="cpu",
        gpu=("Test GPU", (9, 0)),
        say=messages.append,
        **kw,
    )


def test_tensorrt_compiles_once_then_loads_from_the_cache(fake_trt, tiny_card, tmp_path):
    from vbg.engines.torch_engine import TorchEngine

    card = load_card(tiny_card)
    cache = EngineCache(tmp_path / "engines")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    want = TorchEngine(card).run(x)

    said: list[str] = []
    first = _trt_engine(card, cache, said)
    np.testing.assert_allclose(first.run(x), want, atol=1e-5)
    first.run(x)  # same shape: in memory, no second compile
    assert first.compiles == 1 and len(fake_trt.compiled) == 1
    assert fake_trt.compiled[0]["use_explicit_typing"] is True  # FP16 by explicit typing
    assert fake_trt.compiled[0]["shape"] == (1, 3, 64, 96)
    assert len(said) == 1 and "compiling for this GPU, once" in said[0]
    assert len(cache.entries()) == 1

    said2: list[str] = []
    second = _trt_engine(card, cache, said2)  # a new start: loads, does not compile
    np.testing.assert_allclose(second.run(x), want, atol=1e-5)
    assert second.compiles == 0 and len(fake_trt.loaded) == 1 and said2 == []

    # Another frame size is another engine.
    second.run(np.zeros((1, 3, 96, 64), np.float32))
    assert second.compiles == 1 and len(cache.entries()) == 2


def test_tensorrt_recompiles_when_the_weights_or_the_file_change(fake_trt, tiny_card, tmp_path):
    card = load_card(tiny_card)
    cache = EngineCache(tmp_path / "engines")
    x = np.zeros((1, 3, 64, 96), np.float32)
    _trt_engine(card, cache, []).run(x)

    # A damaged cached program is compiled again (and replaced), not a crash.
    [entry] = cache.entries()
    with open(entry["file"], "w") as f:
        f.write("garbage")
    eng = _trt_engine(card, cache, [])
    eng.run(x)
    assert eng.compiles == 1

    # New weights: a new key, whatever the file name.
    eng2 = _trt_engine(card, cache, [])
    eng2._weights_sha = "0" * 64
    eng2.run(x)
    assert eng2.compiles == 1 and len(cache.entries()) == 2


def test_a_failed_compile_falls_back_to_torch_cuda_with_one_line(fake_trt, tiny_card, tmp_path):
    from vbg.engines.torch_engine import TorchEngine

    fake_trt.fail = True
    card = load_card(tiny_card)
    said: list[str] = []
    eng = _trt_engine(card, EngineCache(tmp_path / "e"), said, fallback=lambda: TorchEngine(card))
    x = np.zeros((1, 3, 64, 96), np.float32)
    y = eng.run(x)
    assert y.shape == (1, 1, 64, 96)
    assert len(said) == 2  # "compiling ..." then the one-line reason
    assert "could not compile the model: Unsupported operator: aten::fancy; using torch" in said[1]
    assert "\n" not in said[1]
    assert eng.name.startswith("torch") and "tensorrt failed" in eng.name
    eng.run(x)  # later frames go straight to the fallback, no second attempt
    assert len(said) == 2


def test_tensorrt_without_the_library_says_how_to_install(monkeypatch, tiny_card):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import fails
    from vbg.engines.tensorrt_engine import TensorRTEngine

    with pytest.raises(VbgError, match=r"pip install 'vbg\[gpu\]'"):
        TensorRTEngine(load_card(tiny_card))


# --- selection and fallback between engines ------------------------------------------------


class _Named:
    def __init__(self, name):
        self.name = name

    def run(self, x):
        return x[:, :1]

    def close(self):
        pass


@pytest.fixture
def gpu_registry(monkeypatch):
    """A registry snapshot with a pretend CUDA machine: tensorrt missing, a fake
    torch-cuda available."""
    monkeypatch.setattr(engines, "_REGISTRY", dict(engines._REGISTRY))
    monkeypatch.setattr(engines, "_cuda_available", lambda: True)
    engines.register_engine(
        "tensorrt",
        lambda card, **kw: _Named("tensorrt"),
        priority=50,
        available=lambda: False,
        extra="gpu",
        devices=("cuda",),
        reason=lambda: "torch-tensorrt not installed",
    )
    engines.register_engine(
        "torch-cuda",
        lambda card, **kw: _Named("torch-cuda"),
        priority=40,
        available=lambda: True,
        extra="torch",
        devices=("cuda",),
    )


def test_missing_tensorrt_falls_back_to_torch_cuda_never_the_cpu(gpu_registry, tiny_card, caplog):
    card = load_card(tiny_card)
    with caplog.at_level(logging.INFO, logger="vbg.engines"):
        eng = engines.create_engine("tensorrt", card)
    assert eng.name == "torch-cuda"
    assert "tensorrt not available (torch-tensorrt not installed); using torch-cuda" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vbg.engines"):
        assert engines.create_engine("auto", card).name == "torch-cuda"
    assert "not used: tensorrt: torch-tensorrt not installed" in caplog.text


def test_gpu_engine_with_no_gpu_engine_left_is_an_error(monkeypatch, tiny_card):
    monkeypatch.setattr(engines, "_REGISTRY", dict(engines._REGISTRY))
    monkeypatch.setattr(engines, "_cuda_available", lambda: False)
    with pytest.raises(VbgError, match=r"tensorrt' is not available here \(.+\): pip install"):
        engines.create_engine("tensorrt", load_card(tiny_card))


def test_engine_report_gives_reasons_and_install_commands(monkeypatch):
    real = engines._has_module
    monkeypatch.setattr(engines, "_has_module", lambda m: False if m == "openvino" else real(m))
    report = {r.name: r for r in engines.engine_report()}
    assert set(report) >= {"tensorrt", "torch-cuda", "onnxruntime-gpu", "openvino", "onnxruntime"}
    ov = report["openvino"]
    assert not ov.available and ov.reason == "openvino not installed"
    assert ov.install == "pip install 'vbg[openvino]'"
    assert report["onnxruntime"].available and report["onnxruntime"].reason == ""
    ort_gpu = report["onnxruntime-gpu"]
    if not ort_gpu.available:
        assert "onnxruntime-gpu" in ort_gpu.install and ort_gpu.reason


def test_vbg_info_lists_engines_gpu_and_cache(monkeypatch, tmp_path):
    from vbg.info import info_text

    monkeypatch.setenv("VBG_CACHE_DIR", str(tmp_path))
    EngineCache().store(make_key(**KEY_ARGS), lambda p: p.write_bytes(b"x"))
    text = info_text()
    assert "engines (fastest first):" in text
    for name in ("tensorrt", "torch-cuda", "onnxruntime-gpu", "openvino", "onnxruntime"):
        assert f"  {name} " in text
    assert f"engine cache  {tmp_path / 'engines'} (1 compiled)" in text
    assert "tensorrt fp16 1x3x160x288 on NVIDIA H200" in text
    assert "\ngpu " in text
    (tmp_path / "openvino").mkdir()
    (tmp_path / "openvino" / "123.blob").write_bytes(b"x")
    assert f"openvino cache  {tmp_path / 'openvino'} (1 compiled sizes)" in info_text()


# --- IO binding and device tensors (checked on the CPU) ------------------------------------


def test_onnxruntime_io_binding_matches_the_plain_run(tiny_card):
    from vbg.engines.onnxruntime_engine import OnnxRuntimeEngine

    card = load_card(tiny_card)
    plain = OnnxRuntimeEngine(card)
    bound = OnnxRuntimeEngine(card, io_binding=True)
    rng = np.random.default_rng(1)
    for shape in ((1, 3, 64, 96), (1, 3, 64, 96), (1, 3, 96, 64)):  # reuse, then a new shape
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(bound.run(x), plain.run(x), atol=1e-6)


def test_run_tensor_matches_run_for_torch_and_onnxruntime(tiny_card):
    torch = pytest.importorskip("torch")
    from vbg.engines.onnxruntime_engine import OnnxRuntimeEngine
    from vbg.engines.torch_engine import TorchEngine

    card = load_card(tiny_card)
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 96)).astype(np.float32)
    for eng in (TorchEngine(card), OnnxRuntimeEngine(card)):
        got = eng.run_tensor(torch.from_numpy(x))
        assert got.shape == (2, 1, 64, 96) and got.dtype == torch.float32
        for i in range(2):
            np.testing.assert_allclose(got[i : i + 1].numpy(), eng.run(x[i : i + 1]), atol=1e-4)
