"""`vbg info`: versions of vbg, Python and the libraries it runs on, for bug reports."""

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


def info_text() -> str:
    from vbg.engines import available_engines

    v = versions()
    width = max(len(k) for k in v)
    lines = [f"{k:<{width}}  {val}" for k, val in v.items()]
    lines.append(f"{'engines':<{width}}  {', '.join(available_engines()) or 'none available'}")
    lines.append(f"{'executable':<{width}}  {sys.executable}")
    return "\n".join(lines)
