"""Complete cache keys: the versions of the tools a stage runs and, for bench, the targets it runs on.

"Invalidates exactly the stages that depend on it" means here: the key of the stage that declares the tool
(or reads the target) changes; the keys of the stages before it do not; the stages after it that need it
change through the upstream keys in their own key (their inputs' hashes may change too, when the new tool
writes different bytes). Keys are computed the way `Pipeline.execute` computes them, stage by stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgekd import pipeline
from edgekd.artifacts import create_artifact
from edgekd.pipeline import KeyContext, Pipeline, RunDirectory, StageContext, StageResult
from edgekd.recipe import Recipe, parse_recipe
from edgekd.report.build import build_report
from edgekd.stages import STAGE_NAMES, default_stages
from edgekd.stages.base import BaseStage

UPSTREAM_OF_TFLITE = ("data", "teacher", "distill", "export", "calibrate", "quantize")


def stage_keys(recipe: Recipe, base_dir: Path) -> dict[str, str]:
    """Every enabled default stage's cache key, with no upstream files (only versions, config and facts vary)."""
    pipe = Pipeline(default_stages(), recipe, base_dir, base_dir / "run")
    keys: dict[str, str] = {}
    for stage in pipe.stages:
        if stage.enabled(recipe):
            keys[stage.name] = pipe.key_parts(stage, {name: [] for name in stage.needs}, {}, keys).key
    return keys


def _with_version(monkeypatch: pytest.MonkeyPatch, distribution: str, version: str) -> None:
    real = pipeline.installed_version
    monkeypatch.setattr(pipeline, "installed_version", lambda name: version if name == distribution else real(name))


def test_a_new_onnx2tf_reruns_the_tflite_stage_and_what_reads_it_not_what_comes_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe({})  # the demo: every stage enabled, tflite through onnx2tf, bench on local
    before = stage_keys(recipe, tmp_path)
    assert set(before) == set(STAGE_NAMES)
    _with_version(monkeypatch, "onnx2tf", "99.0.0")
    after = stage_keys(recipe, tmp_path)
    assert {name for name in STAGE_NAMES if before[name] == after[name]} == set(UPSTREAM_OF_TFLITE)
    # tflite itself, and through its key verify, bench, handoff and report (they all need tflite)
    assert {name for name in STAGE_NAMES if before[name] != after[name]} == {
        "tflite", "verify", "bench", "handoff", "report"
    }  # fmt: skip


def test_a_new_torch_reruns_training_but_not_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = parse_recipe({})
    before = stage_keys(recipe, tmp_path)
    _with_version(monkeypatch, "torch", "3.0.0")
    after = stage_keys(recipe, tmp_path)
    assert before["data"] == after["data"] and before["calibrate"] == after["calibrate"]
    assert before["teacher"] != after["teacher"] and before["distill"] != after["distill"]


def _inventory(tmp_path: Path, host: str) -> Path:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    path = tmp_path / "targets.toml"
    path.write_text(f'[targets.pi5]\nkind = "ssh"\nhost = "{host}"\nuser = "pi"\nknown_hosts = "{known_hosts}"\n')
    return path


def test_pointing_a_target_at_another_host_reruns_bench_not_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe({"bench": {"targets": ["pi5"]}})
    monkeypatch.setenv("EDGEKD_TARGETS", str(_inventory(tmp_path, "10.0.0.5")))
    before = stage_keys(recipe, tmp_path)
    monkeypatch.setenv("EDGEKD_TARGETS", str(_inventory(tmp_path, "10.0.0.6")))
    after = stage_keys(recipe, tmp_path)
    assert {name for name in STAGE_NAMES if before[name] != after[name]} == {"bench", "handoff", "report"}
    assert before["verify"] == after["verify"]


def test_the_bench_key_holds_each_targets_entry_and_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKD_TARGETS", str(_inventory(tmp_path, "10.0.0.5")))
    recipe = parse_recipe({"bench": {"targets": ["pi5", "local"]}})
    [bench] = [s for s in default_stages() if s.name == "bench"]
    facts = bench.key_facts(KeyContext(recipe=recipe, base_dir=tmp_path, inputs={}, summaries={}))
    assert list(facts["targets"]) == ["pi5", "local"]
    pi5 = facts["targets"]["pi5"]
    assert pi5["entry"]["host"] == "10.0.0.5" and pi5["identity"]["host"] == "10.0.0.5"
    assert facts["targets"]["local"]["identity"]["kind"] == "local"


class Tool(BaseStage):
    """Writes `<name>.txt` (its upstream text + its name); declares the tools it runs."""

    def __init__(self, name: str, needs: tuple[str, ...] = (), tools: tuple[str, ...] = ()) -> None:
        self.name, self.needs, self._tools = name, needs, tools
        self.runs = 0

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {}

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        return self._tools

    def run(self, ctx: StageContext) -> StageResult:
        self.runs += 1
        path = ctx.workdir / f"{self.name}.txt"
        path.write_text("".join(a.path.read_text() for a in ctx.all_inputs()) + self.name)
        return StageResult([create_artifact(path, name=self.name, format="txt")], {})


def test_an_upgraded_tool_reruns_its_stage_and_the_ones_after_it_even_when_its_output_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages = [Tool("export", tools=("onnx",)), Tool("tflite", ("export",), ("onnx2tf",)), Tool("verify", ("tflite",))]
    pipe = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    assert [o.status for o in pipe.execute()] == ["ran"] * 3
    assert [o.status for o in pipe.execute()] == ["cached"] * 3
    _with_version(monkeypatch, "onnx2tf", "99.0.0")
    assert [o.status for o in pipe.execute()] == ["cached", "ran", "ran"]  # tflite.txt is byte-identical
    manifest = RunDirectory(tmp_path / "run").read_manifest("tflite")
    assert manifest is not None and manifest["tools"] == {"onnx2tf": "99.0.0"}
    report = build_report(tmp_path / "run")
    rows = {row["stage"]: row for row in report["stages"]}
    assert rows["tflite"]["tools"] == {"onnx2tf": "99.0.0"}
    assert rows["export"]["tools"] == {"onnx": pipeline.installed_version("onnx")}


def test_a_tool_that_is_not_installed_has_a_version_too() -> None:
    assert pipeline.installed_version("no-such-distribution-edgekd-test") == "absent"
    assert pipeline.tool_versions(("numpy", "numpy")) == {"numpy": pipeline.installed_version("numpy")}


def test_an_unknown_bench_target_fails_the_stage_with_its_message_and_the_report_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekd.errors import TargetError
    from edgekd.stages.delivery import BenchStage

    class Report(Tool):
        runs_after_failure = True

    monkeypatch.setenv("EDGEKD_TARGETS", str(_inventory(tmp_path, "10.0.0.5")))
    report = Report("report", ("bench",))
    pipe = Pipeline([BenchStage(), report], parse_recipe({"bench": {"targets": ["pi6"]}}), tmp_path, tmp_path / "run")
    with pytest.raises(TargetError, match="unknown target 'pi6'") as caught:
        pipe.execute()
    assert "did you mean 'pi5'" in (caught.value.hint or "")
    manifest = RunDirectory(tmp_path / "run").read_manifest("bench")
    assert manifest is not None and manifest["status"] == "failed" and report.runs == 1


class Measured(Tool):
    """Stands in for bench: its key holds a target's entry and identity."""

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        identity = {"kind": "local", "machine_id": "/etc/machine-id:0123456789abcdef", "cpu_model": "Xeon"}
        return {"targets": {"box": {"entry": {"kind": "local"}, "identity": identity}}}


def test_the_report_shows_each_stages_tools_and_targets_with_the_machine_id_as_a_digest(tmp_path: Path) -> None:
    from edgekd.report.html import render_html

    Pipeline([Measured("bench", tools=("numpy",))], parse_recipe({}), tmp_path, tmp_path / "run").execute()
    manifest = RunDirectory(tmp_path / "run").read_manifest("bench")
    assert manifest is not None and manifest["key_facts"]["targets"]["box"]["identity"]["machine_id"].endswith("cdef")
    report = build_report(tmp_path / "run")
    [bench] = [row for row in report["stages"] if row["stage"] == "bench"]
    identity = bench["key_facts"]["targets"]["box"]["identity"]
    assert identity["machine_id"].startswith("sha256:") and "0123456789abcdef" not in json.dumps(report)
    assert identity["cpu_model"] == "Xeon" and bench["tools"] == {"numpy": pipeline.installed_version("numpy")}
    html = render_html(report, [])
    assert "What each stage's cache key holds" in html and "box (cpu_model Xeon, kind local, machine_id sha256:" in html


def test_an_edited_data_file_reruns_the_data_stage(tmp_path: Path) -> None:
    """The recipe names the user's file; its contents, not its name, decide data.npz (an edit reused it)."""
    (tmp_path / "mine.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    recipe = parse_recipe({"data": {"source": "csv", "path": "mine.csv", "label_column": "label"}})
    before = stage_keys(recipe, tmp_path)
    (tmp_path / "mine.csv").write_text("a,b,label\n1,2,0\n3,5,1\n")  # one value changed, same size
    after = stage_keys(recipe, tmp_path)
    assert before["data"] != after["data"]


def test_an_edited_file_in_a_data_folder_reruns_the_data_stage(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"one")
    recipe = parse_recipe({"data": {"source": "image_folder", "path": "images"}})
    before = stage_keys(recipe, tmp_path)
    (folder / "a.png").write_bytes(b"two")
    os.utime(folder / "a.png", ns=(1, 1))  # another modification time, as any edit gives
    assert stage_keys(recipe, tmp_path)["data"] != before["data"]
    (folder / "b.png").write_bytes(b"new")
    assert stage_keys(recipe, tmp_path)["data"] != before["data"]


def test_a_replaced_teacher_file_and_an_edited_factory_rerun_the_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user retrains their teacher and overwrites teacher.pt, or edits the factory's module: the teacher
    stage's key follows (it reused the old teacher's outputs)."""
    (tmp_path / "teacher.pt").write_bytes(b"weights v1")
    (tmp_path / "my_factory_mod.py").write_text("def make(num_classes):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # where the user's factory module is importable from
    recipe = parse_recipe({"teacher": {"kind": "module", "path": "teacher.pt",
                                       "model": {"arch": "custom", "factory": "my_factory_mod:make"}}})  # fmt: skip
    before = stage_keys(recipe, tmp_path)
    (tmp_path / "teacher.pt").write_bytes(b"weights v2")
    middle = stage_keys(recipe, tmp_path)
    (tmp_path / "my_factory_mod.py").write_text("def make(num_classes):\n    return 1\n")
    after = stage_keys(recipe, tmp_path)
    assert before["data"] == middle["data"] == after["data"]
    assert len({before["teacher"], middle["teacher"], after["teacher"]}) == 3
