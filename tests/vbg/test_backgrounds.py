from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vbg import VbgError
from vbg.assets import assets_dir, default_card_path, sample_clip_path
from vbg.backgrounds import (
    DEFAULT_BLUR_KSIZE,
    _attribution_rows,
    bundled_dir,
    list_backgrounds,
    load_background_image,
    parse_background,
)

LICENCES = {"Public Domain", "CC0-1.0", "CC BY 4.0", "CC BY-SA 4.0"}


def test_assets_paths():
    root = assets_dir()
    assert (root / "backgrounds").is_dir()
    assert bundled_dir() == root / "backgrounds"
    assert default_card_path() == root / "models" / "default.json"
    assert sample_clip_path().name == "talking-head.mp4"


def test_lists_twelve_with_licences():
    bgs = list_backgrounds()
    assert len(bgs) == 12
    names = [b.name for b in bgs]
    assert "paris-eiffel-tower" in names and "rome-colosseum" in names
    for b in bgs:
        assert b.path.is_file() and b.path.stem == b.name
        assert b.license in LICENCES, (b.name, b.license)
        assert b.description and b.credit
    by_name = {b.name: b for b in bgs}
    assert by_name["rio-de-janeiro-christ-the-redeemer"].license == "CC BY-SA 4.0"
    assert by_name["rio-de-janeiro-christ-the-redeemer"].credit == "Chensiyuan"
    assert by_name["picos-de-europa-mountains"].license == "CC BY 4.0"


def test_attribution_table_parsing(tmp_path):
    md = tmp_path / "ATTRIBUTION.md"
    md.write_text(
        "# x\n\n| File | What it shows | Author | Licence |\n|---|---|---|---|\n"
        "| `a.jpg` | A **lake** | [Ann](http://x) | CC0-1.0 |\n"
        "| b.jpg | Hills | Bob | CC BY 4.0 |\n\n"
        "| Source | SHA-256 |\n|---|---|\n| `c.jpg` | 00 |\n"
    )
    rows = _attribution_rows(md)
    assert set(rows) == {"a.jpg", "b.jpg"}
    assert rows["a.jpg"] == {
        "File": "a.jpg",
        "What it shows": "A lake",
        "Author": "Ann",
        "Licence": "CC0-1.0",
    }
    assert _attribution_rows(tmp_path / "missing.md") == {}


def test_parse_bundled_name():
    spec = parse_background("paris-eiffel-tower")
    assert spec.kind == "image"
    assert spec.path == bundled_dir() / "paris-eiffel-tower.jpg"


def test_unknown_name_lists_valid_names():
    with pytest.raises(VbgError) as e:
        parse_background("moon-base")
    msg = str(e.value)
    assert "unknown background 'moon-base'" in msg
    for b in list_backgrounds():
        assert b.name in msg
    assert "'blur'" in msg and "color:#RRGGBB" in msg


def test_image_path(tmp_path):
    p = tmp_path / "bg.png"
    cv2.imwrite(str(p), np.full((20, 30, 3), 7, np.uint8))
    spec = parse_background(str(p))
    assert spec.kind == "image" and spec.path == p.resolve()
    img = load_background_image(p)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8


def test_unreadable_image(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(VbgError, match="cannot read background image"):
        parse_background(str(p))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(VbgError, match="cannot read background image"):
        load_background_image(empty)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(VbgError, match="does not exist"):
        parse_background(str(tmp_path / "nope.jpg"))
    with pytest.raises(VbgError, match="not a file"):
        parse_background(str(tmp_path))


def test_blur_specs():
    assert parse_background("blur").blur_ksize == DEFAULT_BLUR_KSIZE
    spec = parse_background("blur:15")
    assert spec.kind == "blur" and spec.blur_ksize == 15
    for bad in ("blur:0", "blur:x", "blur:-3"):
        with pytest.raises(VbgError, match="bad blur"):
            parse_background(bad)


def test_bundled_images_decode_at_1080p():
    img = load_background_image(Path(bundled_dir()) / "machu-picchu.jpg")
    assert img.shape == (1080, 1920, 3)
