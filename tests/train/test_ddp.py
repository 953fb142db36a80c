"""DistributedDataParallel with two gloo processes on the CPU, as torchrun would start them."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("pycocotools")

import torch.distributed as dist  # noqa: E402

from tests.train.fitutil import tiny_config, tiny_data  # noqa: E402
from train.fit import load_checkpoint  # noqa: E402

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, ann: str, images: str, out: str, dump: str) -> None:
    """One process: the environment torchrun sets, then fit(); each rank dumps its weights."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    from train.fit import fit

    result = fit(
        tiny_config(Path(ann), Path(images), Path(out), epochs=1, batch_size=2, device="cpu")
    )
    params = {k: v.detach().clone() for k, v in result.model.named_parameters()}
    torch.save({"params": params, "epochs": result.epochs_done}, Path(dump) / f"rank{rank}.pt")


@pytest.mark.skipif(not dist.is_available(), reason="torch built without distributed")
@pytest.mark.timeout(300)
def test_two_gloo_processes_train_in_sync(tmp_path):
    import torch.multiprocessing as mp

    ann, images = tiny_data(tmp_path / "coco")
    out = tmp_path / "run"
    dump = tmp_path / "dump"
    dump.mkdir()
    mp.spawn(
        _rank_main,
        args=(_free_port(), str(ann), str(images), str(out), str(dump)),
        nprocs=WORLD,
        join=True,
    )
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert r0["epochs"] == r1["epochs"] == 1
    assert r0["params"].keys() == r1["params"].keys()
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), k

    # Rank 0 wrote the run; its weights are the ranks' common weights.
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == WORLD and ckpt["epoch"] == 1
    for k, v in r0["params"].items():
        assert torch.equal(ckpt["model"][k], v), k
    assert (out / "best.pt").is_file() and (out / "curves.png").is_file()
    log = json.loads((out / "log.json").read_text())
    assert len(log) == 1  # one writer, one row
    # Each rank trained on its own half of the training split per step.
    n_train = len(json.loads((out / "splits" / "ids.json").read_text())["train"])
    assert ckpt["global_step"] == (n_train // WORLD) // 2
