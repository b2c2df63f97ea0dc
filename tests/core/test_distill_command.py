"""`edgekd distill RECIPE`: --resume reuses a finished teacher; overrides of seed and labelled share."""

from __future__ import annotations

from edgekd.artifacts import load_artifact
from edgekd.commands.distill import distill_cmd
from tests.support.distill_fixtures import SMALL_RECIPE as RECIPE


def test_resume_reuses_a_finished_teacher(tmp_path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        RECIPE.replace("augment = true", "augment = false").replace(
            "epochs = 2 }\n[student]", "epochs = 1 }\n[student]"
        )
    )
    distill_cmd(
        recipe, out=tmp_path / "run", nproc=1, resume=False, labeled_fraction=None, seed=None, json_output=False
    )
    teacher = tmp_path / "run" / "teacher" / "teacher.pt"
    first = teacher.stat().st_mtime_ns
    distill_cmd(recipe, out=tmp_path / "run", nproc=1, resume=True, labeled_fraction=0.5, seed=None, json_output=False)
    assert teacher.stat().st_mtime_ns == first  # reused, not retrained
    assert load_artifact(tmp_path / "run" / "distill" / "student.pt").config["labeled_fraction"] == 0.5
    distill_cmd(recipe, out=tmp_path / "run", nproc=1, resume=True, labeled_fraction=None, seed=5, json_output=False)
    assert teacher.stat().st_mtime_ns != first  # another seed: the stamp does not match, the teacher is retrained
