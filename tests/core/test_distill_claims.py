"""The demo's claims, seed 0 (the 3-seed figures live in bench/results/distill_methods.json).

The demo is label-scarce: the teacher sees every training label, the student and the scratch baseline 10 %
of them. There distillation measurably helps; with every label it must at least not hurt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.data.datasets import load_dataset
from edgekd.distill.api import distill, prepare_teacher
from edgekd.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_demo_gains_beyond_noise_and_full_labels_lose_nothing(tmp_path) -> None:
    demo, base = load_recipe(EXAMPLES / "digits.toml")
    assert demo.data.labeled_fraction == 0.1 and [loss.kind for loss in demo.distill.losses] == ["dist"]
    data = load_dataset(demo.data, demo.run.seed, base)
    teacher = prepare_teacher(demo.teacher, data, seed=demo.run.seed, out_dir=tmp_path / "teacher", base_dir=base)

    few = distill(teacher, demo.student, demo.distill, data, seed=demo.run.seed, out_dir=tmp_path / "scarce",
                  labeled_fraction=demo.data.labeled_fraction).metrics  # fmt: skip
    assert few["student_params"] <= 0.10 * few["teacher_params"]
    assert few["kd_minus_scratch"] >= 0.03 and few["within_noise"] is False  # the report's verdict: KD helped
    assert few["student_accuracy"] >= 0.97 * few["teacher_accuracy"]

    full = distill(teacher, demo.student, demo.distill, data, seed=demo.run.seed, out_dir=tmp_path / "full",
                   labeled_fraction=1.0).metrics  # fmt: skip
    assert full["kd_minus_scratch"] >= -0.01
