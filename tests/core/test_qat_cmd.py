"""`edgekd qat RECIPE`: the ladder's rung 4 (quantization-aware distillation) on a recipe's own run (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.cli import main

RECIPE = """
[run]
name = "qat"
seed = 0

[data]
source = "digits"

[teacher]
model = { arch = "mlp", width = 64, depth = 1 }
train = { epochs = 3 }

[student]
model = { arch = "mlp", width = 32, depth = 1 }

[distill]
train = { epochs = 3 }
baseline = false

[quantize]
mode = "static"
%s

[tflite]
enabled = false

[bench]
enabled = false

[handoff]
enabled = false

[report]
history = false
"""


def write_recipe(folder: Path, quantize: str = "") -> Path:
    path = folder / "recipe.toml"
    path.write_text(RECIPE % quantize, encoding="utf-8")
    return path


def test_qat_without_a_budget_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["qat", str(write_recipe(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "accuracy budget" in err and "--max-drop" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_qat_fine_tunes_even_when_a_post_training_rung_holds_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 50-point budget that plain PTQ holds: `edgekd run` would stop at rung 1; `edgekd qat` runs rung 4 too (the
    recipe's own `qat = false` notwithstanding: the command is the request), and keeps the fastest in-budget pick."""
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path, "max_accuracy_drop = 0.5\nqat = false")
    assert main(["--json", "qat", str(recipe), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    rungs = [row["rung"] for row in printed["rows"]]
    assert rungs[0] == 1 and 4 in rungs and 2 not in rungs  # PTQ held: no sensitivity, but QAT ran
    qat = next(row for row in printed["rows"] if row["rung"] == 4)
    assert qat["runtimes"]["ort"]["accuracy"] is not None and (out / "quant_ladder" / qat["model"]).is_file()
    fastest = min(printed["rows"], key=lambda row: row["p50_ms"])
    assert printed["recommended"]["ort"]["rung"] == fastest["rung"]
    assert not (out / "report.json").exists()  # stages after quantize were not asked for


def test_a_recipe_whose_quantize_section_cannot_take_the_budget_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path, 'method = "entropy"')  # fine without a budget; the ladder picks the method
    assert main(["qat", str(recipe), "--max-drop", "0.01", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot take edgekd qat's budget" in err and "remove method" in err and "internal error" not in err
    assert not out.exists()
