"""Stages every trial shares (data, teacher, calibration): computed once per sweep directory, then seeded.

The stage cache is per run directory, and a trial is a run directory of its own. So the shared stages run once
in `<sweep>/shared/` (under a lock: the first worker trains the teacher, the others wait and then reuse it), and
each new trial directory is seeded with copies of their files and manifests. The pipeline recomputes every cache
key itself: when the trial's data/teacher/calibration config matches (the search space cannot vary them) it
sees a cache hit; when it does not, it simply reruns the stage, so seeding can never give a wrong result.
Files are copied, not hard-linked: a stage that rewrote a file in place would otherwise change every trial's.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

from edgekd.pipeline import Pipeline, RunDirectory
from edgekd.recipe import Recipe
from edgekd.stages import default_stages, in_pipeline_order

SHARED_STAGES = in_pipeline_order({"data", "teacher", "calibrate"})


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prepare_shared(recipe: Recipe, base_dir: Path, shared_dir: Path) -> list[str]:
    """Run (or find cached) the shared stages the recipe enables in `shared_dir`; returns their names."""
    stages = [s for s in default_stages() if s.name in SHARED_STAGES and s.enabled(recipe)]
    wanted = {s.name for s in stages}
    with _exclusive(shared_dir.parent / "shared.lock"):
        Pipeline(default_stages(), recipe, base_dir, shared_dir).execute(only=wanted)
    return sorted(wanted)


def seed_trial(shared_dir: Path, trial_dir: Path, stages: list[str]) -> int:
    """Copy the shared stages' files and manifests into a trial directory that has none; returns files copied."""
    source, dest = RunDirectory(shared_dir), RunDirectory(trial_dir)
    copied = 0
    for stage in stages:
        manifest = source.read_manifest(stage)
        if manifest is None or manifest.get("status") == "failed" or dest.read_manifest(stage) is not None:
            continue
        for entry in manifest.get("artifacts", []):
            for name in (entry.get("path"), entry.get("sidecar")):
                if not name:
                    continue
                src, dst = shared_dir / name, trial_dir / name
                if src.is_file() and not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                    copied += 1
        dest.stages.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.manifest_path(stage), dest.manifest_path(stage))  # last: files first, then the claim
    return copied
