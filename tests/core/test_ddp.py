"""`edgekd distill --nproc 2`: DistributedDataParallel over two CPU processes (torchrun, gloo)."""

from __future__ import annotations

import json
import math

import pytest

from edgekd.artifacts import load_artifact
from edgekd.commands.distill import distill_cmd
from edgekd.distill.models import load_torch_model
from tests.support.distill_fixtures import SMALL_RECIPE as RECIPE


@pytest.mark.ddp
@pytest.mark.slow
def test_two_process_ddp_distillation(tmp_path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    distill_cmd(recipe, out=tmp_path / "run", nproc=2, resume=False, labeled_fraction=None, seed=None, json_output=False)
    outcome = json.loads((tmp_path / "run" / "distill" / "outcome.json").read_text())
    metrics = outcome["metrics"]
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    rows = metrics["history"]["student"]
    per_rank = math.ceil(math.ceil(metrics["train_samples"] / 2) / 32)  # each rank saw half of every epoch
    assert len(rows) == 2 and all(r["steps"] == per_rank and r["world_size"] == 2 for r in rows)
    assert metrics["history"]["scratch"][0]["steps"] == per_rank  # same budget for the baseline
    assert metrics["teacher_cache"]["misses"] == 2  # rank 0 wrote one entry per augmented epoch
    student = load_artifact(outcome["artifacts"][0])
    assert student.name == "student_torch"
    load_torch_model(student)
    assert 0.0 <= metrics["student_accuracy"] <= 1.0

