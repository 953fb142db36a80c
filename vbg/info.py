"""`vbg info`: versions of vbg, Python and the libraries it runs on, the GPU, every
inference engine with whether it runs here (and if not, why and how to install it), and the
folder where compiled GPU engines are cached: what a bug report needs."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

# Distribution names (read from metadata: nothing heavy is imported).
PACKAGES = (
    "numpy",
    "opencv-python-headless",
    "opencv-python",
    "av",
    "numba",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "torch",
    "torch-tensorrt",
    "pyvirtualcam",
    "pydensecrf2",
)


def versions() -> dict[str, str]:
    from vbg import __version__

    out = {
        "vbg": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def gpu_text() -> str:
    """The CUDA GPU torch sees, or why there is none (torch is imported only if present)."""
    from vbg.engines import _has_module

    if not _has_module("torch"):
        return "unknown (torch not installed; onnxruntime-gpu may still see one)"
    import torch

    if not getattr(torch.version, "cuda", None):
        return "none (this torch build has no CUDA support)"
    if not torch.cuda.is_available():
        return f"none (torch {torch.__version__} with CUDA {torch.version.cuda} sees no GPU)"
    names = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        names.append(f"{i}: {torch.cuda.get_device_name(i)} (compute {major}.{minor})")
    return f"{'; '.join(names)}; CUDA {torch.version.cuda}"


def engine_lines() -> list[str]:
    from vbg.engines import engine_report

    rows = engine_report()
    width = max(len(r.name) for r in rows)
    out = []
    for r in rows:
        where = "/".join(r.devices)
        if r.available:
            out.append(f"  {r.name:<{width}}  available ({where})")
        else:
            out.append(f"  {r.name:<{width}}  not available: {r.reason} -> {r.install}")
    return out


def cache_lines() -> list[str]:
    from vbg.engines.cache import EngineCache, cache_root

    cache = EngineCache()
    entries = cache.entries()
    out = [f"engine cache  {cache.folder} ({len(entries)} compiled)"]
    for e in entries[:5]:
        shape = "x".join(str(s) for s in e.get("shape", []))
        out.append(f"  {e.get('engine')} {e.get('precision')} {shape} on {e.get('gpu')}")
    # OpenVINO's own cache of compiled input sizes (vbg.engines.openvino_engine)
    ov = cache_root() / "openvino"
    blobs = len(list(ov.glob("*.blob"))) if ov.is_dir() else 0
    out.append(f"openvino cache  {ov} ({blobs} compiled sizes)")
    return out


def info_text() -> str:
    v = versions()
    width = max(len(k) for k in v)
    lines = [f"{k:<{width}}  {val}" for k, val in v.items()]
    lines.append(f"{'executable':<{width}}  {sys.executable}")
    lines.append(f"{'gpu':<{width}}  {gpu_text()}")
    lines.append("engines (fastest first):")
    lines.extend(engine_lines())
    lines.extend(cache_lines())
    return "\n".join(lines)
