"""Exploratory analysis of a COCO person set: what `python -m train check` reports.

Input is one row per image (from train/check.py): source, width, height, persons (individual
person annotations), crowd (crowd regions) and area_fraction (share of the image's pixels
covered by the union of its person masks, crowd included). Output: per-source summary
tables (Markdown) and three PNG plots, drawn with matplotlib's object API on the Agg canvas
(no pyplot state, no display needed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ALL = "all"


def sources_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The sources in the rows, sorted; [] when no image carries one."""
    return sorted({r["source"] for r in rows if r.get("source")})


def _groups(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """ "all" plus one entry per source (images without a source count only in "all")."""
    out = {ALL: list(rows)}
    for s in sources_of(rows):
        out[s] = [r for r in rows if r.get("source") == s]
    return out


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per source (and "all"): image count, persons per image, sizes, person area."""
    out: dict[str, dict[str, Any]] = {}
    for name, rs in _groups(rows).items():
        if not rs:
            continue
        persons = np.array([r["persons"] for r in rs])
        frac = np.array([r["area_fraction"] for r in rs], dtype=np.float64)
        sizes = Counter((r["width"], r["height"]) for r in rs)
        (w, h), n = sizes.most_common(1)[0]
        out[name] = {
            "images": len(rs),
            "persons": int(persons.sum()),
            "persons_per_image_mean": float(persons.mean()),
            "persons_per_image_max": int(persons.max()),
            "images_without_person": int(
                sum(1 for r in rs if r["persons"] == 0 and r["crowd"] == 0)
            ),
            "images_with_crowd": int(sum(1 for r in rs if r["crowd"] > 0)),
            "distinct_sizes": len(sizes),
            "most_common_size": f"{w}x{h} ({n})",
            "width_range": [int(min(r["width"] for r in rs)), int(max(r["width"] for r in rs))],
            "height_range": [int(min(r["height"] for r in rs)), int(max(r["height"] for r in rs))],
            "portrait_share": float(np.mean([r["height"] > r["width"] for r in rs])),
            "area_fraction_mean": float(frac.mean()),
            "area_fraction_p10_p50_p90": [float(v) for v in np.percentile(frac, [10, 50, 90])],
        }
    return out


def markdown_summary(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as one Markdown table, a column per source."""
    cols = [c for c in summary if c != ALL] + [ALL]
    rows = [
        ("images", lambda s: f"{s['images']:,}"),
        ("person annotations", lambda s: f"{s['persons']:,}"),
        (
            "persons per image (mean / max)",
            lambda s: f"{s['persons_per_image_mean']:.2f} / {s['persons_per_image_max']}",
        ),
        ("images without a person", lambda s: f"{s['images_without_person']:,}"),
        ("images with a crowd region", lambda s: f"{s['images_with_crowd']:,}"),
        ("most common size (count)", lambda s: s["most_common_size"]),
        ("distinct sizes", lambda s: f"{s['distinct_sizes']:,}"),
        ("width range", lambda s: "{}-{}".format(*s["width_range"])),
        ("height range", lambda s: "{}-{}".format(*s["height_range"])),
        ("portrait orientation", lambda s: f"{100 * s['portrait_share']:.0f} %"),
        ("person area, mean", lambda s: f"{100 * s['area_fraction_mean']:.1f} %"),
        (
            "person area, p10 / p50 / p90",
            lambda s: " / ".join(f"{100 * v:.1f}" for v in s["area_fraction_p10_p50_p90"]) + " %",
        ),
    ]
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(summary[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _figure(n_axes: int = 1, width: float = 7.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * n_axes), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(n_axes, 1, i + 1) for i in range(n_axes)]
    return fig, axes


def _per_source(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups = _groups(rows)
    srcs = sources_of(rows)
    return [(s, groups[s]) for s in srcs] if srcs else [(ALL, list(rows))]


def plot_persons_per_image(rows: Sequence[dict[str, Any]], path: Path, cap: int = 10) -> Path:
    """Bar chart: share of images with 0, 1, ..., >=cap person annotations, per source."""
    groups = _per_source(rows)
    fig, (ax,) = _figure()
    x = np.arange(cap + 1)
    width = 0.8 / len(groups)
    for i, (name, rs) in enumerate(groups):
        counts = np.bincount(np.minimum([r["persons"] for r in rs], cap), minlength=cap + 1)
        ax.bar(
            x + (i - (len(groups) - 1) / 2) * width,
            counts / max(1, len(rs)),
            width,
            label=f"{name} ({len(rs)})",
        )
    ax.set_xticks(x, [str(v) for v in x[:-1]] + [f">={cap}"])
    ax.set_xlabel("person annotations per image (crowd regions not counted)")
    ax.set_ylabel("share of the source's images")
    ax.set_title("Persons per image")
    ax.legend()
    fig.savefig(path, dpi=100)
    return path


def plot_image_sizes(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Scatter of width x height, one colour per source; marker area grows with the number
    of images of that exact size (many corpora have one size per source)."""
    fig, (ax,) = _figure(height=5.0)
    for name, rs in _per_source(rows):
        sizes = Counter((r["width"], r["height"]) for r in rs)
        wh = np.array(list(sizes.keys()), dtype=np.float64)
        n = np.array(list(sizes.values()), dtype=np.float64)
        ax.scatter(
            wh[:, 0],
            wh[:, 1],
            s=12 + 60 * np.sqrt(n / n.max()),
            alpha=0.6,
            label=f"{name} ({len(rs)})",
        )
    lim = max(max(r["width"] for r in rows), max(r["height"] for r in rows)) * 1.05
    ax.plot([0, lim], [0, lim], color="grey", lw=0.8, ls="--", label="square")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("Image sizes (marker area ~ images of that size)")
    ax.legend()
    fig.savefig(path, dpi=100)
    return path


def plot_area_fraction(rows: Sequence[dict[str, Any]], path: Path, bins: int = 20) -> Path:
    """Histogram of the person area fraction (union of person masks / image), per source."""
    fig, (ax,) = _figure()
    edges = np.linspace(0.0, 1.0, bins + 1)
    for name, rs in _per_source(rows):
        frac = np.array([r["area_fraction"] for r in rs], dtype=np.float64)
        ax.hist(
            frac,
            bins=edges,
            weights=np.full(len(frac), 1.0 / max(1, len(frac))),
            histtype="step",
            lw=1.8,
            label=f"{name} ({len(rs)})",
        )
    ax.set_xlabel("person pixels / image pixels")
    ax.set_ylabel("share of the source's images")
    ax.set_title("Person area as a fraction of the image")
    ax.legend()
    fig.savefig(path, dpi=100)
    return path


def plot_all(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """The three plots, as PNG files in out_dir; [] when there are no images."""
    if not rows:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_persons_per_image(rows, out_dir / "persons_per_image.png"),
        plot_image_sizes(rows, out_dir / "image_sizes.png"),
        plot_area_fraction(rows, out_dir / "area_fraction.png"),
    ]
