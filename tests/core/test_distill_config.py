"""Every [teacher]/[student]/[distill] key carries a description (docs/RECIPE.md and the JSON Schema are generated from them)."""

from __future__ import annotations

import pytest

from edgekd.config import distill

MODELS = [distill.ModelSpec, distill.TrainConfig, distill.TeacherPreprocessing, distill.TeacherConfig, distill.StudentConfig,
          distill.LossConfig, distill.DistillConfig]  # fmt: skip


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_described(model) -> None:
    missing = [name for name, field in model.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"{model.__name__}: fields without a description: {missing}"


def test_batch_size_default_scales_down_for_tiny_training_splits() -> None:
    config = distill.TrainConfig()
    assert [config.batch_for(n) for n in (50, 105, 500, 1257, 60000)] == [8, 8, 31, 64, 64]
    assert distill.TrainConfig(batch_size=128).batch_for(50) == 128
