"""`vbg process` over many files: in parallel on one machine, or across a Ray cluster.

Each file is one job, processed exactly as `vbg process IN -o OUT` would (vbg.pipeline
.process_config), so each output keeps the single-file guarantee: complete, or absent. A
file that fails (a corrupt input, a full disk) is reported and the others go on; the exit
status says whether every file was written.

Local: `jobs` worker processes (spawned, so each owns its engine and, on a GPU machine, one
GPU: worker i sees only GPU i mod n through CUDA_VISIBLE_DEVICES). Default: one worker per
GPU, or one on a machine without a GPU (the engines already use every core).

Ray (`vbg[cluster]`): one Ray task per file, each asking for one GPU where the cluster
has GPUs. `address` is a running cluster ("auto", or ray://host:port); without one a local
single-node cluster starts for the run. Inputs and outputs must be paths every node sees
(shared storage).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from vbg import VbgError
from vbg.config import ProcessConfig

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path


@dataclass(frozen=True)
class JobResult:
    job: Job
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    worker: str = ""  # host:pid, where it ran


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and the videos and images directly inside any folder given."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            media = VIDEO_SUFFIXES + IMAGE_SUFFIXES
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in media)
            if not found:
                raise VbgError(f"no videos or images in folder {p}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise VbgError(f"input not found: {p}")
    return out


def plan_jobs(
    inputs: Sequence[str | Path], output_dir: str | Path, suffix: str = ".mp4"
) -> list[Job]:
    """One job per input file, writing OUTPUT_DIR/<name>.mp4 (images keep their suffix).
    Two inputs with the same name would overwrite each other: refused before any work."""
    files = expand_inputs(inputs)
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise VbgError(f"with several inputs, -o must be a folder; {out_dir} is a file")
    jobs, seen = [], {}
    for f in files:
        ext = f.suffix.lower() if f.suffix.lower() in IMAGE_SUFFIXES else suffix
        target = out_dir / f"{f.stem}{ext}"
        if target in seen:
            raise VbgError(f"{f} and {seen[target]} would both be written to {target}; rename one")
        seen[target] = f
        jobs.append(Job(f, target))
    return jobs


def gpu_count() -> int:
    """CUDA GPUs visible to this process (0 without torch or without a GPU)."""
    from vbg.engines import _has_module

    if not _has_module("torch"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_job(job: Job, cfg: ProcessConfig) -> JobResult:
    """One file, in this process. Never raises for a bad file: the result says."""
    from vbg.pipeline import process_config

    where = f"{os.uname().nodename}:{os.getpid()}"
    t0 = time.perf_counter()
    try:
        res = process_config(
            replace(cfg, input=str(job.input), output=str(job.output), progress=False)
        )
    except (VbgError, OSError) as e:
        return JobResult(job, False, error=str(e), seconds=time.perf_counter() - t0, worker=where)
    return JobResult(job, True, res.frames, time.perf_counter() - t0, worker=where)


# --- local processes ----------------------------------------------------------------------

_WORKER_GPU: str | None = None


def _init_worker(gpus: int, counter) -> None:
    # Before torch is imported in this process: the worker sees only its own GPU.
    global _WORKER_GPU
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        _WORKER_GPU = str(index % gpus)
        os.environ["CUDA_VISIBLE_DEVICES"] = _WORKER_GPU


def run_local(
    jobs: Sequence[Job], cfg: ProcessConfig, workers: int | None = None
) -> list[JobResult]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    gpus = gpu_count()
    workers = workers or max(1, gpus)
    if workers == 1 or len(jobs) == 1:
        return [run_job(j, cfg) for j in jobs]
    ctx = mp.get_context("spawn")  # no forked copy of a CUDA context or of engine threads
    counter = ctx.Value("i", 0)
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(gpus, counter),
    ) as pool:
        return list(pool.map(run_job, jobs, [cfg] * len(jobs)))


# --- Ray ----------------------------------------------------------------------------------


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise VbgError("processing on a Ray cluster needs ray: pip install 'vbg[cluster]'") from e
    return ray


def run_ray(
    jobs: Sequence[Job], cfg: ProcessConfig, address: str | None = None, num_cpus: int | None = None
) -> list[JobResult]:
    """One Ray task per file. address: a running cluster ("auto", ray://...); None starts a
    local one-node cluster (num_cpus caps it) and shuts it down afterwards."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
            started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        # A GPU per file where there are GPUs; else one CPU slot each (the engine uses
        # more threads inside it, Ray's slots only bound how many run at once).
        options = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        task = ray.remote(**options)(run_job)
        refs = [task.remote(j, cfg) for j in jobs]
        return list(ray.get(refs))
    finally:
        if started:
            ray.shutdown()


# --- the command --------------------------------------------------------------------------


def process_many(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    cfg: ProcessConfig,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    use_ray: bool = False,
) -> list[JobResult]:
    """Plans, checks the outputs, runs, and logs one line per file and a summary."""
    from vbg.outputs import check_overwrite

    jobs = plan_jobs(inputs, output_dir)
    for j in jobs:  # an existing output is refused before any file is processed
        check_overwrite(j.output, overwrite=cfg.overwrite)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = run_ray(jobs, cfg, ray_address) if use_ray else run_local(jobs, cfg, workers)
    for r in results:
        if r.ok:
            log.info(
                "wrote %s: %d frames in %.1f s (%s)", r.job.output, r.frames, r.seconds, r.worker
            )
        else:
            log.error("%s: %s (nothing written)", r.job.input, r.error)
    ok = sum(r.ok for r in results)
    frames = sum(r.frames for r in results)
    wall = time.perf_counter() - t0
    log.info(
        "%d of %d files written, %d frames in %.1f s (%.1f fps overall)",
        ok,
        len(results),
        frames,
        wall,
        frames / wall if wall > 0 else 0.0,
    )
    return results
