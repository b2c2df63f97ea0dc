"""examples/kws_dscnn.toml end to end on WAV clips written here: data -> teacher -> KD into DS-CNN -> int8 -> TFLM bundle.

The example recipe is run as shipped except for the data (a folder of tone clips in tmp_path: 3 tones, 20 clips
each, 0.6 to 1.3 s) and what makes it quick (few epochs, no benchmark, no baseline). What must hold: the
student is the reference DS-CNN on (1, 49, 10) MFCCs, and every frontend parameter reaches the data sidecar and
the handoff manifest unchanged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd.config.data import AudioConfig
from edgekd.data.audio_frontend import frontend_record
from edgekd.recipe import load_recipe
from tests.support.wav_clips import clip_folder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "kws_dscnn.toml"


def quick_recipe(text: str) -> str:
    """The example on the tone clips, made quick; every edit must hit."""
    edits = [
        (r'path = "speech_commands_v0\.02"', 'path = "clips"', 1),
        (r"classes = \[[^\]]*\]", 'classes = ["high", "low"]', 1),  # "mid" goes to "other", as unknown words do
        (r"test_fraction = 0\.1\n", "test_fraction = 0.25\n", 1),
        (r"width = 64, depth = 3", "width = 16, depth = 2", 1),
        (r"epochs = 20,", "epochs = 12,", 1),
        (r"epochs = 36,", "epochs = 4,", 1),
        (r"batch_size = 100", "batch_size = 8", 2),
        (r"baseline = true", "baseline = false", 1),
        (r"size = 200", "size = 16", 1),
        (r'precisions = \["fp32", "int8"\]', 'precisions = ["int8"]', 1),
        (r"\[bench\]\n", "[bench]\nenabled = false\n", 1),
        (r"\[handoff\]\n", "[verify]\nint8 = { agreement = 0.5, max_accuracy_drop = 0.5 }\n\n[handoff]\n", 1),
    ]
    for pattern, replacement, expected in edits:
        text, count = re.subn(pattern, replacement, text)
        assert count == expected, f"{pattern} found {count} times in {EXAMPLE}, expected {expected}"
    return text


def test_the_example_parses_with_the_reference_frontend() -> None:
    recipe, _ = load_recipe(EXAMPLE)
    assert recipe.data.source == "wav" and recipe.student.model.arch == "dscnn"
    assert recipe.data.audio == AudioConfig()  # the example spells out the defaults: the reference's


@pytest.mark.slow
def test_wav_clips_through_dscnn_to_a_micro_bundle_with_the_frontend_recorded(tmp_path: Path) -> None:
    clip_folder(tmp_path / "clips", per_class=20)
    recipe = tmp_path / "kws_dscnn.toml"
    recipe.write_text(quick_recipe(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "run"
    env = dict(os.environ, EDGEKD_HISTORY=str(tmp_path / "history.sqlite"))
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "run", str(recipe), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    expected = frontend_record(AudioConfig())
    data = json.loads((out / "data.npz.json").read_text())
    assert data["config"]["preprocessing"]["audio_frontend"] == expected
    assert data["config"]["label_names"] == ["high", "low", "other"]
    student = json.loads((out / "student.pt.json").read_text())
    assert student["config"]["model"]["arch"] == "dscnn" and student["config"]["input_shape"] == [1, 49, 10]
    assert student["config"]["params"] == 23_171  # the reference DS-CNN at 3 classes (23,756 at 12)

    report = json.loads((out / "report.json").read_text())
    assert {row["artifact"] for row in report["parity"]} >= {"tflite_int8", "tflm_int8"}
    manifest = json.loads((out / "handoff" / "model_manifest.json").read_text())
    assert manifest["preprocessing"]["audio_frontend"] == expected
    assert manifest["inputs"][0]["shape"][1:3] == [49, 10] and manifest["labels"] == ["high", "low", "other"]
