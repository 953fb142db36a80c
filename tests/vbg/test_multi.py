"""`vbg process` over many files: planning, local workers, a local Ray cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vbg.test_process_e2e import args, make_clip, probe
from vbg import VbgError
from vbg.cli import main
from vbg.config import ProcessConfig
from vbg.multi import plan_jobs, process_many


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder with two good clips, one corrupt file and a text file (ignored)."""
    d = tmp_path_factory.mktemp("many")
    make_clip(d / "a.mp4", frames=8)
    make_clip(d / "b.mov", frames=6, audio=False)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    (d / "notes.txt").write_text("not media")
    return d


def test_plan_expands_folders_and_refuses_name_collisions(inputs, tmp_path):
    jobs = plan_jobs([inputs], tmp_path / "out")
    assert [j.input.name for j in jobs] == ["a.mp4", "b.mov", "broken.mp4"]
    assert [j.output.name for j in jobs] == ["a.mp4", "b.mp4", "broken.mp4"]
    other = tmp_path / "other"
    other.mkdir()
    make_clip(other / "a.mkv", frames=2, audio=False)
    with pytest.raises(VbgError, match="would both be written to"):
        plan_jobs([inputs / "a.mp4", other / "a.mkv"], tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(VbgError, match="must be a folder"):
        plan_jobs([inputs], tmp_path / "file")
    with pytest.raises(VbgError, match="input not found"):
        plan_jobs([tmp_path / "missing.mp4"], tmp_path / "out")


def _cfg(tiny_card) -> ProcessConfig:
    return ProcessConfig(model=str(tiny_card), engine="onnxruntime", threads=1, tta=False)


def _check(results, out: Path) -> None:
    by_name = {r.job.input.name: r for r in results}
    assert by_name["a.mp4"].ok and by_name["b.mov"].ok
    assert not by_name["broken.mp4"].ok and by_name["broken.mp4"].error
    assert probe(out / "a.mp4")["frames"] == 8 and probe(out / "a.mp4")["audio"] == ["aac"]
    assert probe(out / "b.mp4")["frames"] == 6
    # The failed file left nothing, not even a partial file.
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]


@pytest.mark.slow
def test_local_workers_write_each_file_completely_or_not_at_all(inputs, tiny_card, tmp_path):
    out = tmp_path / "out"
    results = process_many([inputs], out, _cfg(tiny_card), workers=2)
    _check(results, out)
    assert len({r.worker for r in results}) >= 1


def test_existing_outputs_are_refused_before_any_work(inputs, tiny_card, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.mp4").write_bytes(b"keep me")
    with pytest.raises(VbgError, match="already exists"):
        process_many([inputs], out, _cfg(tiny_card))
    assert sorted(p.name for p in out.iterdir()) == ["b.mp4"]


def test_cli_with_several_inputs_reports_the_failure(inputs, tiny_card, tmp_path, capsys):
    out = tmp_path / "done"
    code = main(
        ["process", str(inputs / "a.mp4"), str(inputs / "broken.mp4"), "-o", str(out)]
        + args(tiny_card)
        + ["--no-tta"]
    )
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"]
    err = capsys.readouterr().err
    assert "1 of 2 files written" in err and "1 of 2 files failed" in err


@pytest.mark.slow
def test_a_local_one_node_ray_cluster_runs_one_task_per_file(inputs, tiny_card, tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray-out"
    from vbg.multi import run_ray

    jobs = plan_jobs([inputs], out)
    out.mkdir()
    results = run_ray(jobs, _cfg(tiny_card), num_cpus=2)
    _check(results, out)
    assert not ray.is_initialized()  # the cluster this run started is shut down
