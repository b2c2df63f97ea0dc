"""`edgekd verify --recipe R` reads R's data the way `edgekd run R` does: relative to the recipe file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.slow
def test_verify_takes_the_recipes_data_path_relative_to_the_recipe(tmp_path: Path) -> None:
    import torch

    project = tmp_path / "project"
    project.mkdir()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 1, 4, 4), dtype=np.uint8)
    y = (x.reshape(60, -1).mean(axis=1) > 127).astype(np.int64)
    np.savez(project / "mine.npz", x=x, y=y)
    (project / "recipe.toml").write_text('[data]\nsource = "npz"\npath = "mine.npz"\n')
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    onnx_path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 4, 4),), str(onnx_path), dynamo=True, external_data=False)

    # run from a folder that is not the recipe's: the data path must still resolve next to the recipe
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "verify", str(onnx_path), "--recipe", "project/recipe.toml"],
                          cwd=tmp_path, check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "does not exist" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr

    # against a reference, the recipe's [verify] gate is the one applied (this path raised AttributeError)
    done = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", "verify", str(onnx_path), "--reference", str(onnx_path),
         "--recipe", "project/recipe.toml"],
        cwd=tmp_path, check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
