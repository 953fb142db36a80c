"""The on-disk cache of compiled GPU engines (TensorRT programs).

Compiling the model into a TensorRT engine takes from seconds to minutes, and the engine is
valid only for the GPU, the library versions, the precision, the input shape and the exact
weights it was built from. Each compiled program is stored under a file name made from a
hash of all of those (`EngineKey.digest`), with a JSON manifest beside it listing them in
clear, so a change of any one (a driver update that brings a new TensorRT, a retrained
model, another camera size) misses the cache and compiles again, and an old entry is never
loaded for the wrong setup.

The folder: $VBG_CACHE_DIR, else $XDG_CACHE_HOME/vbg, else ~/.cache/vbg; engines live in
its engines/ subfolder. Writes are atomic (temporary name, then rename), so two vbg
processes compiling at once, or one killed mid-write, never leave a half file that a later
start would load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_ENV = "VBG_CACHE_DIR"
KEY_FORMAT = 1  # bump when the meaning of a field changes: every old entry then misses


def cache_root() -> Path:
    """vbg's cache folder (not created here)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vbg"


def engine_cache_dir() -> Path:
    return cache_root() / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything a compiled engine depends on. Two keys equal <=> the engine can be reused."""

    engine: str  # "tensorrt"
    gpu: str  # torch.cuda.get_device_name()
    capability: str  # compute capability, "9.0"
    versions: tuple[tuple[str, str], ...]  # (library, version), sorted by library
    precision: str  # "fp16"
    shape: tuple[int, ...]  # the static input shape (n, c, h, w)
    weights_sha256: str  # of the weights file the network was built from

    @property
    def digest(self) -> str:
        payload = json.dumps({"format": KEY_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    def filename(self, suffix: str = ".ep") -> str:
        n, c, h, w = (self.shape + (0, 0, 0, 0))[:4]
        # Readable prefix for whoever lists the folder; the digest makes it unique.
        return f"{self.engine}-{self.precision}-{h}x{w}-b{n}-{self.digest}{suffix}"

    def manifest(self) -> dict:
        d = asdict(self)
        d["versions"] = dict(self.versions)
        d["format"] = KEY_FORMAT
        return d


def make_key(
    *,
    engine: str,
    gpu: str,
    capability: tuple[int, int] | str,
    versions: dict[str, str],
    precision: str,
    shape: tuple[int, ...],
    weights_sha256: str,
) -> EngineKey:
    cap = capability if isinstance(capability, str) else f"{capability[0]}.{capability[1]}"
    return EngineKey(
        engine=engine,
        gpu=gpu,
        capability=cap,
        versions=tuple(sorted((str(k), str(v)) for k, v in versions.items())),
        precision=precision,
        shape=tuple(int(s) for s in shape),
        weights_sha256=weights_sha256,
    )


class EngineCache:
    """Compiled programs by key in one folder: lookup, atomic store, listing."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else engine_cache_dir()

    def path(self, key: EngineKey, suffix: str = ".ep") -> Path:
        return self.folder / key.filename(suffix)

    def lookup(self, key: EngineKey, suffix: str = ".ep") -> Path | None:
        """The cached program for `key`, or None. An entry whose manifest is missing or
        disagrees with the key (a hash collision, a hand-copied file) is not used."""
        p = self.path(key, suffix)
        manifest = p.with_suffix(".json")
        if not p.is_file() or not manifest.is_file():
            return None
        try:
            stored = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None
        # Compared as JSON reads it back (tuples become lists).
        return p if stored == json.loads(json.dumps(key.manifest())) else None

    def store(self, key: EngineKey, write: Callable[[Path], None], suffix: str = ".ep") -> Path:
        """Calls write(tmp_path) to produce the program, then moves it into place with its
        manifest. A write that raises leaves nothing behind."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path(key, suffix)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            write(tmp)
            manifest_tmp = tmp.with_name(tmp.name + ".json")
            manifest_tmp.write_text(json.dumps(key.manifest(), indent=2, sort_keys=True) + "\n")
            # The program first, then its manifest: lookup() needs both, so a reader never
            # sees a manifest whose program is not complete.
            os.replace(tmp, final)
            os.replace(manifest_tmp, final.with_suffix(".json"))
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".json")):
                leftover.unlink(missing_ok=True)
        return final

    def entries(self) -> list[dict]:
        """Manifests of the complete entries, newest first (for `vbg info`)."""
        if not self.folder.is_dir():
            return []
        out = []
        for manifest in sorted(
            self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True
        ):
            program = manifest.with_suffix(".ep")
            if not program.is_file():
                continue
            try:
                d = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            d["file"] = str(program)
            d["bytes"] = program.stat().st_size
            out.append(d)
        return out
