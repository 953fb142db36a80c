from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VBG_SHARED", REPO.parent / "shared"))
PERSONS = SHARED / "data" / "persons"


@pytest.fixture(scope="session", autouse=True)
def _crop_passes_compiled() -> None:
    """The person crop's compiled passes, compiled (or loaded from numba's cache) before any
    test runs: the runtime compiles them in the background when a frame first wants a
    crop, which on a fresh machine takes ~10 s of CPU while later tests run, and the
    tests that time a paced live loop must not share the machine with it."""
    from vbg.roi import crop_kernels_ready

    crop_kernels_ready(wait=True)


@pytest.fixture(scope="session")
def tiny_card(tmp_path_factory) -> Path:
    """Path of a tiny U-Net's model card (ONNX + torch weights beside it)."""
    pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    from tests.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def persons_dir() -> Path:
    """../shared/data/persons, or a clean skip where it is absent."""
    if not (PERSONS / "annotations" / "instances_persons.json").is_file():
        pytest.skip(f"real corpus not found at {PERSONS}")
    return PERSONS


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """A real clip: the bundled sample, else ../shared/samples."""
    for p in (
        REPO / "assets" / "samples" / "talking-head.mp4",
        SHARED / "samples" / "talking-head.mp4",
    ):
        if p.is_file():
            return p
    pytest.skip("no sample clip available")


@pytest.fixture(scope="session")
def tiny_prior_card(tmp_path_factory) -> Path:
    """A tiny prior model (4 input channels: the image and its previous probability)."""
    pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    from tests.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_prior"), prior=True, seed=2)
