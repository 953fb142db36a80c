"""Corrupt and unusual inputs give one clean error (VbgError) or a valid output: regression
tests for each traceback once seen, and a bounded-time fuzz over MP4, JPEG and model cards."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.vbg.test_pipeline import ConstEngine, fake_processor
from tests.vbg.test_process_e2e import make_clip
from vbg import VbgError
from vbg.card import card_from_dict, load_card
from vbg.pipeline import process_video
from vbg.sources import ImageSource, VideoFileSource, jpeg_is_complete, upright


def write_clip(path: Path, n: int = 30, *, faststart: bool = False, title: str | None = None):
    """A plain clip; faststart puts the index first (so a cut file still opens)."""
    opts = {"movflags": "faststart"} if faststart else {}
    enc = "latin-1" if title else "utf-8"
    with av.open(str(path), "w", options=opts, metadata_encoding=enc) as out:
        if title:
            out.metadata["title"] = title
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(n):
            img = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)  # real bits per frame
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in v.encode(None):
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def proc(tiny_card):
    return fake_processor(tiny_card, ConstEngine(+20.0))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


# --------------------------------------------------------------------------- regressions


def test_latin1_title_metadata_opens(tmp_path):
    path = write_clip(tmp_path / "old-camera.mp4", 5, title="café über")
    with pytest.raises(UnicodeDecodeError):
        av.open(str(path))  # what used to escape as a traceback
    assert sum(1 for _ in VideoFileSource(path)) == 5


def test_unknown_video_codec_is_a_clean_error(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", 5)
    bad = tmp_path / "unknown.mp4"
    bad.write_bytes(clip.read_bytes().replace(b"avc1", b"zzzz"))
    with pytest.raises(VbgError, match="video codec .* not supported"):
        VideoFileSource(bad)


def test_unknown_audio_codec_is_no_traceback(tmp_path, proc):
    clip = make_clip(tmp_path / "c.mp4", frames=10, audio=True)
    bad = tmp_path / "unknown-audio.mp4"
    bad.write_bytes(clip.read_bytes().replace(b"mp4a", b"zzzz"))
    try:
        process_video(bad, tmp_path / "out.mp4", processor=proc, progress=False)
    except VbgError as e:
        assert "\n" not in str(e)
    else:
        assert sum(1 for _ in VideoFileSource(tmp_path / "out.mp4")) == 10
    assert leftovers(tmp_path) == []


def test_truncated_video_says_where_and_fails(tmp_path, proc):
    full = write_clip(tmp_path / "full.mp4", 60, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    out = tmp_path / "out.mp4"
    with pytest.raises(
        VbgError, match=r"truncated or corrupt: decoding stopped at frame \d+ of 60"
    ):
        process_video(cut, out, processor=proc, progress=False)
    assert not out.exists() and leftovers(tmp_path) == []
    # --keep-partial keeps what decoded, as a valid file
    with pytest.raises(VbgError, match="truncated"):
        process_video(cut, out, processor=proc, progress=False, keep_partial_on_interrupt=True)
    assert 0 < sum(1 for _ in VideoFileSource(out)) < 60
    assert leftovers(tmp_path) == []


def test_truncated_jpeg_is_an_error_not_a_grey_image(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    assert jpeg_is_complete(data)
    (tmp_path / "ok.jpg").write_bytes(data)
    assert ImageSource(tmp_path / "ok.jpg").width == 96
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # OpenCV alone accepts it
    with pytest.raises(VbgError, match="truncated"):
        ImageSource(tmp_path / "cut.jpg")


def test_output_that_is_a_folder_fails_before_any_work(tmp_path, proc):
    clip = write_clip(tmp_path / "c.mp4", 5)
    (tmp_path / "out.mp4").mkdir()
    proc.timer.reset()
    with pytest.raises(VbgError, match="is a folder"):
        process_video(clip, tmp_path / "out.mp4", processor=proc, progress=False)
    assert proc.timer.summary().get("total", {}).get("n", 0) == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"multiple": 0}, "multiple"),
        ({"height": 0, "width": 0}, "height"),
        ({"std": [0.2, 0.0, 0.2]}, "std"),
        ({"height": "big"}, "height"),
    ],
)
def test_model_card_values_are_checked(tiny_card, change, match):
    d = json.loads(Path(tiny_card).read_text())
    d["input"].update(change)
    with pytest.raises(VbgError, match=match):
        card_from_dict(d)


def rotated_clip(path: Path, matrix: tuple[int, ...]) -> Path:
    """A clip whose track header (tkhd) carries a display matrix, as a phone writes it: the
    frames are stored landscape with a bright top-left corner."""
    import struct

    plain = path.with_name("plain-" + path.name)
    with av.open(str(plain), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        for _ in range(5):
            img = np.zeros((64, 96, 3), np.uint8)
            img[:16, :16] = 255
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in v.encode(None):
            out.mux(pkt)
    data = plain.read_bytes()
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    i = data.rfind(identity)  # the last one is the track's (the first, the movie's)
    assert i > 0
    path.write_bytes(data[:i] + struct.pack(">9I", *matrix) + data[i + 36 :])
    return path


@pytest.mark.parametrize(
    ("matrix", "rotation", "corner"),
    [
        ((0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000), 90, (0, -1)),  # top-right
        ((0, 0xFFFF0000, 0, 0x10000, 0, 0, 0, 0, 0x40000000), 270, (-1, 0)),  # bottom-left
    ],
)
def test_rotation_metadata_gives_upright_frames(tmp_path, proc, matrix, rotation, corner):
    path = rotated_clip(tmp_path / "phone.mp4", matrix)
    src = VideoFileSource(path)
    assert src.rotation == rotation and (src.width, src.height) == (64, 96)
    img = next(iter(src)).image
    assert img.shape == (96, 64, 3) and img[corner[0], corner[1]].min() > 200
    out = tmp_path / "out.mp4"
    process_video(path, out, processor=proc, progress=False)
    assert (VideoFileSource(out).width, VideoFileSource(out).height) == (64, 96)


def test_upright_turns_by_the_rotation():
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = 255  # top-left
    assert upright(img, 0) is img
    r = upright(img, 90)  # 90 clockwise: the top-left goes to the top-right
    assert r.shape == (3, 2, 3) and r[0, 1, 0] == 255
    assert upright(img, 180)[1, 2, 0] == 255
    assert upright(img, 270)[2, 0, 0] == 255


# --------------------------------------------------------------------------- fuzz


def corrupt(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["flip", "truncate", "zero", "shuffle"])
    if kind == "truncate":
        return bytes(b[: rng.randrange(len(b))])
    if kind == "flip":
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "zero":
        i = rng.randrange(len(b))
        b[i : i + rng.randint(1, 512)] = bytes(len(b[i : i + 512]))[: len(b[i : i + 512])]
    else:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[i:j] = bytes(reversed(b[i:j]))
    return bytes(b)


def fuzz_media(
    seed_file: Path, folder: Path, proc, budget_s: float, out_suffix: str, max_cases: int
) -> int:
    rng = random.Random(1234)
    data = seed_file.read_bytes()
    t_end = time.perf_counter() + budget_s
    n = 0
    while time.perf_counter() < t_end and n < max_cases:
        inp = folder / f"in{n}{seed_file.suffix}"
        out = folder / f"out{n}{out_suffix}"
        inp.write_bytes(corrupt(data, rng))
        try:
            process_video(inp, out, processor=proc, progress=False)
        except VbgError as e:
            assert "\n" not in str(e) and str(e)
            assert not out.exists()
        else:
            if out_suffix == ".mp4":
                assert sum(1 for _ in VideoFileSource(out)) > 0
            else:
                assert cv2.imread(str(out)) is not None
        assert leftovers(folder) == []
        inp.unlink()
        out.unlink(missing_ok=True)
        n += 1
    return n


def fuzz_cards(card: Path, budget_s: float, max_cases: int) -> int:
    rng = random.Random(99)
    d0 = json.loads(card.read_text())
    values = [0, -1, 1.5, "x", None, [], {}, [0, 0, 0], 1e9, float("nan"), True]
    t_end = time.perf_counter() + budget_s
    n = 0
    while time.perf_counter() < t_end and n < max_cases:
        d = json.loads(json.dumps(d0))
        for _ in range(rng.randint(1, 3)):
            section = rng.choice(["input", "output", None])
            target = d if section is None else d.get(section)
            if not isinstance(target, dict) or not target:
                continue
            key = rng.choice(list(target))
            if rng.random() < 0.2:
                del target[key]
            else:
                target[key] = rng.choice(values)
        try:
            c = card_from_dict(d)
        except VbgError as e:
            assert "\n" not in str(e)
        else:
            h, w = c.input.size_for(720, 1280)
            assert h > 0 and w > 0
        n += 1
    # And bytes, not just values: the file itself corrupted.
    text = card.read_bytes()
    for i in range(50):
        bad = card.with_name(f"fuzz{i}.json")
        bad.write_bytes(corrupt(text, rng))
        try:
            load_card(bad)
        except VbgError as e:
            assert "\n" not in str(e)
        finally:
            bad.unlink()
        n += 1
    return n


def run_fuzz(
    tmp_path, proc, tiny_card, budget_s: float, min_cases: int, max_cases: int = 10**9
) -> None:
    """Each category runs until max_cases or budget_s, whichever comes first, and must reach
    min_cases: a count, so a slow or loaded machine takes longer rather than failing."""
    mp4 = write_clip(tmp_path / "seed.mp4", 8, faststart=True)
    img = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    jpg = tmp_path / "seed.jpg"
    jpg.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    work = tmp_path / "work"
    work.mkdir()
    for name, fuzz in (
        ("mp4", lambda: fuzz_media(mp4, work, proc, budget_s, ".mp4", max_cases)),
        ("jpeg", lambda: fuzz_media(jpg, work, proc, budget_s, ".png", max_cases)),
        ("card", lambda: fuzz_cards(Path(tiny_card), budget_s, max_cases)),
    ):
        t0 = time.perf_counter()
        n = fuzz()
        took = time.perf_counter() - t0
        print(f"fuzz {name}: {n} cases in {took:.1f} s")
        assert n >= min_cases, name
        assert took < budget_s + 10, f"{name}: a case hung"


def test_fuzz_quick(tmp_path, proc, tiny_card):
    run_fuzz(tmp_path, proc, tiny_card, budget_s=2.0, min_cases=20)


@pytest.mark.slow
def test_fuzz_many(tmp_path, proc, tiny_card):
    run_fuzz(tmp_path, proc, tiny_card, budget_s=60.0, min_cases=300, max_cases=300)


def test_cli_truncated_input_exits_1_with_one_line(tmp_path, tiny_card, capsys):
    from vbg.cli import main

    full = write_clip(tmp_path / "full.mp4", 60, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "out.mp4"
    model = ["--model", str(tiny_card), "--engine", "onnxruntime", "--threads", "1"]
    assert main(["process", str(cut), "-o", str(out), "--no-progress", *model]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("vbg: error:")]
    assert len(errors) == 1 and "decoding stopped at frame" in errors[0]
    assert "Traceback" not in err and not out.exists() and leftovers(tmp_path) == []
