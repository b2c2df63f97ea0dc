"""The issue's claims on the demo recipes, seed 0 (the 3-seed figures live in bench/results/distill.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.data.datasets import load_dataset
from edgekd.distill.api import distill, prepare_teacher
from edgekd.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_demo_and_label_scarce_claims(tmp_path) -> None:
    demo, base = load_recipe(EXAMPLES / "digits.toml")
    scarce, _ = load_recipe(EXAMPLES / "digits_scarce.toml")
    assert scarce.teacher == demo.teacher and scarce.student == demo.student  # one teacher serves both
    data = load_dataset(demo.data, demo.run.seed, base)
    teacher = prepare_teacher(demo.teacher, data, seed=demo.run.seed, out_dir=tmp_path / "teacher", base_dir=base)

    full = distill(teacher, demo.student, demo.distill, data, seed=demo.run.seed, out_dir=tmp_path / "full").metrics
    assert full["student_params"] <= 0.10 * full["teacher_params"]
    assert full["student_accuracy"] >= 0.97 * full["teacher_accuracy"]
    assert full["kd_minus_scratch"] >= -0.01

    few = distill(teacher, scarce.student, scarce.distill, data, seed=scarce.run.seed, out_dir=tmp_path / "scarce",
                  labeled_fraction=scarce.data.labeled_fraction).metrics  # fmt: skip
    assert scarce.data.labeled_fraction == 0.1
    assert few["kd_minus_scratch"] >= 0.03 and few["within_noise"] is False
