"""Distributed distillation: `edgekd distill --nproc N` runs the student training under torchrun.

The parent process prepares data and teacher once (writing them into the run directory), then starts
`torchrun --standalone --nproc_per_node N -m edgekd.distill.ddp JOB.json`. Every worker joins a
gloo process group (CPU training), reads the same data and teacher, and calls
`edgekd.distill.api.distill`; `train.fit` wraps the student in DistributedDataParallel and shards
each epoch's batches across ranks; rank 0 writes artifacts and `outcome.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError, UsageError

OUTCOME = "outcome.json"


def launch(job: dict[str, Any], job_path: Path, nproc: int, timeout: float | None = None) -> dict[str, Any]:
    """Run the job on `nproc` local processes and return rank 0's outcome JSON."""
    from edgekd.fileio import atomic_write_json

    if nproc < 2:
        raise UsageError(f"--nproc must be at least 2 for a distributed run (got {nproc})")
    atomic_write_json(job_path, dict(job, quiet=console_quiet()))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "edgekd.distill.ddp", str(job_path)]  # fmt: skip
    from edgekd import console

    env = dict(os.environ, OMP_NUM_THREADS="1")
    stdout = subprocess.DEVNULL if console.is_quiet() else None  # rank 0's progress bar goes to our terminal
    try:
        done = subprocess.run(
            argv, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise EdgekdError(f"the {nproc}-process distillation did not finish within {timeout:.0f} s") from None
    outcome_path = Path(job["out_dir"]) / OUTCOME
    if done.returncode != 0 or not outcome_path.exists():
        reason = _worker_error(done.stderr) or done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise EdgekdError(f"distributed distillation failed (exit {done.returncode}): {reason if isinstance(reason, str) else reason[0]}",
                          hint="rerun with --nproc 1 to see the error in-process")  # fmt: skip
    return json.loads(outcome_path.read_text(encoding="utf-8"))


def console_quiet() -> bool:
    from edgekd import console

    return console.is_quiet()


def _worker_error(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if line.startswith("edgekd-error: "):
            return line.removeprefix("edgekd-error: ")
    return None


def process_group_backend(device: str) -> str:
    """nccl when the ranks train on GPUs (device "cuda", or "auto" with CUDA and nccl present), else gloo (CPU)."""
    import torch
    import torch.distributed as dist

    gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if gpu and torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def run_worker(job: dict[str, Any]) -> int:
    """One rank: join the group, distil, and (rank 0) write the outcome."""
    import torch.distributed as dist

    from edgekd import console
    from edgekd.artifacts import load_artifact
    from edgekd.config.distill import DistillConfig, StudentConfig
    from edgekd.data.datasets import Dataset
    from edgekd.distill.api import distill
    from edgekd.fileio import atomic_write_json

    backend = process_group_backend(DistillConfig.model_validate(job["distill"]).train.device)
    if backend == "nccl":
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per rank
    dist.init_process_group(backend)
    rank = dist.get_rank()
    if rank != 0 or job.get("quiet"):
        console.set_mode(quiet=True)
    try:
        data = Dataset.load(Path(job["data"]), job["preprocessing"])
        teacher = load_artifact(job["teacher"])
        outcome = distill(teacher, StudentConfig.model_validate(job["student"]), DistillConfig.model_validate(job["distill"]), data,
                          seed=int(job["seed"]), out_dir=Path(job["out_dir"]), labeled_fraction=float(job["labeled_fraction"]),
                          resume=bool(job.get("resume")))  # fmt: skip
        if rank == 0:
            metrics = dict(outcome.metrics, world_size=dist.get_world_size(), backend=backend)
            atomic_write_json(
                Path(job["out_dir"]) / OUTCOME,
                {"metrics": metrics, "artifacts": [str(a.path) for a in outcome.artifacts]},
            )
        dist.barrier()
    except EdgekdError as exc:
        print(f"edgekd-error: {exc.message}", file=sys.stderr, flush=True)
        return 1
    finally:
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: torchrun ... -m edgekd.distill.ddp JOB.json", file=sys.stderr)
        return 2
    return run_worker(json.loads(Path(args[0]).read_text(encoding="utf-8")))


if __name__ == "__main__":
    sys.exit(main())
