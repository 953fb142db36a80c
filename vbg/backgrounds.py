"""Bundled backgrounds, the --background syntax, and cover-fitting an image to a frame.

A background is one of:
  a bundled name   its file stem in assets/backgrounds, e.g. "paris-eiffel-tower"
  an image path    any file OpenCV can decode
  a video path     .mp4/.webm/.gif/...: loops behind the person (vbg.video_background)
  "blur"           the camera's own picture, blurred ("blur:K" sets the kernel, in pixels)
  "color:#RRGGBB"  a flat colour
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vbg import VbgError
from vbg.assets import assets_dir

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".gif", ".avi")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_BLUR_KSIZE = 41  # full-resolution kernel: strong enough to hide a room, keeps colours


@dataclass(frozen=True)
class BackgroundInfo:
    name: str  # file stem: what --background takes
    path: Path
    description: str
    license: str
    credit: str


@dataclass(frozen=True)
class BackgroundSpec:
    kind: str  # "image" | "video" | "blur" | "color"
    path: Path | None = None
    color_bgr: tuple[int, int, int] | None = None
    blur_ksize: int = DEFAULT_BLUR_KSIZE
    focal: tuple[float, float] | None = None  # the landmark (x, y in 0..1), see vbg.framing

    def __post_init__(self) -> None:
        if self.kind not in ("image", "video", "blur", "color"):
            raise ValueError(
                f"background kind must be image, video, blur or color, not {self.kind!r}"
            )
        if self.kind in ("image", "video") and self.path is None:
            raise ValueError(f"an {self.kind} background needs a path")
        if self.kind == "color" and self.color_bgr is None:
            raise ValueError("a color background needs color_bgr")

    def describe(self) -> str:
        if self.kind in ("image", "video"):
            return str(self.path)
        if self.kind == "blur":
            return f"blur:{self.blur_ksize}"
        b, g, r = self.color_bgr  # type: ignore[misc]
        return f"color:#{r:02x}{g:02x}{b:02x}"


def bundled_dir() -> Path:
    return assets_dir() / "backgrounds"


def _clean_cell(cell: str) -> str:
    """Markdown cell -> plain text: no backticks, bold or link syntax."""
    text = cell.strip().replace("**", "").replace("`", "")
    text = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r"\1", text)
    return " ".join(text.split())


def _split_row(line: str) -> list[str]:
    return [c for c in line.strip().strip("|").split("|")]


def _attribution_rows(path: Path) -> dict[str, dict[str, str]]:
    """File name -> {column name -> cell} from the first table with a File column."""
    if not path.is_file():
        return {}
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("|"):
            if header is not None and rows:
                break  # the table ended
            header = None
            continue
        cells = [_clean_cell(c) for c in _split_row(line)]
        if header is None:
            if "File" in cells and "What it shows" in cells:
                header = cells
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the |---|---| line
        row = dict(zip(header, cells, strict=False))  # a short row: missing cells
        name = row.get("File", "")
        if name:
            rows[name] = row
    return rows


def list_backgrounds() -> list[BackgroundInfo]:
    """Every bundled image, with what it shows and its licence from ATTRIBUTION.md."""
    folder = bundled_dir()
    rows = _attribution_rows(folder / "ATTRIBUTION.md")
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        row = rows.get(path.name, {})
        out.append(
            BackgroundInfo(
                name=path.stem,
                path=path,
                description=row.get("What it shows", ""),
                license=row.get("Licence", row.get("License", "unknown (not in ATTRIBUTION.md)")),
                credit=row.get("Author", ""),
            )
        )
    return out


def background_names() -> list[str]:
    return [b.name for b in list_backgrounds()]


def parse_color(text: str) -> tuple[int, int, int]:
    """ "#RRGGBB", "RRGGBB" or "#RGB" -> (b, g, r)."""
    t = text.strip().lstrip("#")
    if re.fullmatch(r"[0-9a-fA-F]{3}", t):
        t = "".join(ch * 2 for ch in t)
    if not re.fullmatch(r"[0-9a-fA-F]{6}", t):
        raise VbgError(f"bad colour '{text}': use #RRGGBB, e.g. color:#00b140")
    r, g, b = (int(t[i : i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def parse_background(spec: str) -> BackgroundSpec:
    """--background text -> BackgroundSpec; image files are checked to decode now, so a bad
    background fails before any video is opened."""
    text = spec.strip()
    low = text.lower()
    if low == "blur" or low.startswith("blur:"):
        k = DEFAULT_BLUR_KSIZE
        if ":" in text:
            arg = text.split(":", 1)[1]
            if not arg.isdigit() or int(arg) < 1:
                raise VbgError(f"bad blur '{text}': use blur or blur:K with K a positive integer")
            k = int(arg)
        return BackgroundSpec(kind="blur", blur_ksize=k)
    if low.startswith(("color:", "colour:")):
        return BackgroundSpec(kind="color", color_bgr=parse_color(text.split(":", 1)[1]))

    names = {b.name: b for b in list_backgrounds()}
    if text in names:
        from vbg.framing import load_focal_points

        focal = load_focal_points(bundled_dir()).get(text)
        return BackgroundSpec(kind="image", path=names[text].path, focal=focal)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        from vbg.video_background import probe_video

        probe_video(path)  # unreadable: fails now, before any input is opened
        return BackgroundSpec(kind="video", path=path.resolve())
    if path.is_file():
        load_background_image(path)
        return BackgroundSpec(kind="image", path=path.resolve())
    if path.exists():
        raise VbgError(f"background '{text}' is not a file")
    if path.suffix or "/" in text or "\\" in text:
        raise VbgError(f"background image '{text}' does not exist")
    raise VbgError(
        f"unknown background '{text}'; choose one of: {', '.join(sorted(names))} "
        "... or give an image or video path, 'blur' or 'color:#RRGGBB'"
    )


def load_background_image(path: str | Path) -> np.ndarray:
    """BGR uint8 image; VbgError if it cannot be read or decoded."""
    path = Path(path)
    try:
        # imdecode from bytes rather than imread: works with non-ASCII paths everywhere.
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise VbgError(f"cannot read background image {path}: {e.strerror or e}") from e
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise VbgError(f"cannot read background image {path}: not an image OpenCV can decode")
    return img


def cover_fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale `img` to cover h x w (keeping its aspect ratio), then centre-crop. Never
    stretches; returns a new C-contiguous h x w x 3 array."""
    from vbg.framing import Framing, fit_background

    return fit_background(img, h, w, framing=Framing(align="center"))
