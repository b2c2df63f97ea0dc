"""Sweep pieces that need no training: the [sweep] table, the check before trial 1, trial recipes, the
Pareto/recommendation rule, and the device locks (file lock for SQLite, pg_advisory_lock for PostgreSQL)."""

from __future__ import annotations

import itertools
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekd.errors import RecipeError, UsageError
from edgekd.sweep.config import SweepConfig, load_sweep_recipe
from edgekd.sweep.device_lock import FileDeviceLock, PostgresDeviceLock, device_lock_for
from edgekd.sweep.results import mark_pareto
from edgekd.sweep.runner import run_sweep
from edgekd.sweep.space import check_space, trial_recipe

BASE = """
[run]
name = "s"
[data]
source = "digits"
[student]
model = { arch = "cnn", width = 4, depth = 2 }
[tflite]
enabled = false
[handoff]
enabled = false
[report]
history = false
"""
SWEEP = """
[sweep]
out = "sw"
objectives = [{ metric = "accuracy", artifact = "onnx_int8" }, { metric = "p50_ms", artifact = "onnx_int8", target = "local" }]
constraints = [{ metric = "size_bytes", artifact = "onnx_int8", max = 9000 }]
[sweep.space]
"""


def write(tmp_path: Path, space: str, extra: str = "", sweep: str = SWEEP) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(BASE + extra + sweep + space, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(RecipeError) as info:
        run_sweep(path)
    assert not (path.parent / "sw").exists(), "refused before the sweep directory (and any trial) was made"
    return info.value.message


def test_space_over_a_shared_table_is_refused_before_any_trial(tmp_path: Path) -> None:
    message = refused(write(tmp_path, '"teacher.train.epochs" = { choices = [1, 2] }\n'))
    assert (
        message == "[sweep] space key 'teacher.train.epochs': [teacher] is shared by every trial and cannot be searched"
    )


def test_a_value_the_recipe_refuses_names_the_axis_and_value(tmp_path: Path) -> None:
    message = refused(write(tmp_path, '"student.model.arch" = { choices = ["cnn", "transformer"] }\n'))
    assert message.startswith("[sweep] space student.model.arch = 'transformer' gives a recipe edgekd refuses:")
    assert "'transformer' is not one of" in message


def test_a_range_outside_the_recipe_bounds_is_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, '"distill.losses.0.alpha" = { low = 0.5, high = 1.5 }\n'))
    assert message.startswith("[sweep] space distill.losses.0.alpha = 1.5 gives a recipe edgekd refuses:")


def test_an_objective_on_an_artifact_no_trial_makes_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '"student.model.width" = { choices = [2, 4] }\n', extra="[quantize]\nenabled = false\n")
    assert refused(path).startswith("[sweep] accuracy(onnx_int8): no trial makes artifact 'onnx_int8'")


def test_latency_on_a_target_not_benchmarked_is_refused(tmp_path: Path) -> None:
    sweep = SWEEP.replace('target = "local"', 'target = "pi5"')
    path = write(tmp_path, '"student.model.width" = { choices = [2, 4] }\n', sweep=sweep)
    assert refused(path) == "[sweep] p50_ms(onnx_int8@pi5): target 'pi5' is not benchmarked by the recipe"


def test_unknown_sweep_key_and_bad_range_are_recipe_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '"student.model.width" = { low = 8, high = 2 }\n')
    assert "sweep.space.student.model.width: low (8) is above high (2)" in refused(path)
    path = write(
        tmp_path,
        '"student.model.width" = { choices = [2] }\n',
        sweep=SWEEP.replace("[sweep]\n", "[sweep]\ntrails = 3\n"),
    )
    assert "sweep.trails: Extra inputs are not permitted" in refused(path)


def test_trial_recipe_sets_dotted_keys_and_list_values(tmp_path: Path) -> None:
    path = write(tmp_path, '"student.model.width" = { choices = [2, 4] }\n')
    recipe, sweep, raw, _ = load_sweep_recipe(path)
    check_space(recipe, raw, sweep, str(path))
    trial = trial_recipe(
        raw,
        {
            "student.model.width": 16,
            "distill.losses.0.temperature": 2.5,
            "tflite.precisions": ["fp32"],
            "quantize.per_channel": False,
        },
        "t",
    )
    assert trial.student.model.width == 16 and trial.student.model.depth == 2
    assert trial.distill.losses[0].temperature == 2.5 and trial.distill.losses[0].kind == "hinton"
    assert trial.tflite.precisions == ["fp32"] and trial.quantize.per_channel is False
    assert raw["student"]["model"]["width"] == 4, "the sweep recipe's own table is not changed"


def test_recommended_is_the_feasible_pareto_trial_best_on_the_first_objective() -> None:
    sweep = SweepConfig.model_validate({
        "space": {"student.model.width": {"choices": [1]}},
        "objectives": [{"metric": "accuracy"}, {"metric": "p50_ms", "target": "local"}],
    })  # fmt: skip
    labels = [o.label for o in sweep.objectives]

    def row(number: int, acc: float, p50: float, feasible: bool = True) -> dict:
        return {"number": number, "values": dict(zip(labels, (acc, p50))), "feasible": feasible, "pareto": False}

    rows = [row(0, 0.90, 1.0), row(1, 0.95, 2.0), row(2, 0.99, 0.5, feasible=False), row(3, 0.89, 1.5)]
    front = mark_pareto(rows, sweep)
    assert [r["number"] for r in front] == [1, 0]  # 3 is dominated by 0, 2 is infeasible
    assert [r["pareto"] for r in rows] == [True, True, False, False]


def _hold(lock: object, target: str, hold_s: float, out: multiprocessing.Queue) -> None:
    with lock.hold([target]):  # type: ignore[attr-defined]
        start = time.time()
        time.sleep(hold_s)
        out.put((start, time.time()))


def _no_interleaving(lock: object, workers: int = 3) -> list[tuple[float, float]]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(lock, "local", 0.4, out)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    windows = sorted(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, f"two holders of one device overlapped: {windows}"
    return windows


def test_file_device_lock_serialises_processes(tmp_path: Path) -> None:
    lock = device_lock_for(f"sqlite:///{tmp_path / 'study.sqlite3'}")
    assert isinstance(lock, FileDeviceLock) and lock.directory == tmp_path / "device-locks"
    assert len(_no_interleaving(lock)) == 3


@pytest.mark.slow
def test_postgres_advisory_lock_serialises_processes() -> None:
    from tests.support.postgres import local_postgres

    try:
        server_cm = local_postgres()
        server = server_cm.__enter__()
    except LookupError as exc:
        pytest.skip(str(exc))
    try:
        lock = device_lock_for(server.url)
        assert isinstance(lock, PostgresDeviceLock)
        assert len(_no_interleaving(lock)) == 3
    finally:
        server_cm.__exit__(None, None, None)


def _study_with_finished(val_bests: list[float]) -> object:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for value in val_bests:
        trial = study.ask()
        trial.set_user_attr("val_best", value)
        study.tell(trial, [value, 1.0])
    return study


def test_pruning_waits_for_startup_trials_then_prunes_below_the_percentile() -> None:
    from edgekd.sweep.config import Pruning
    from edgekd.sweep.trial import prune_reason

    rule = Pruning(percentile=50, startup_trials=4)
    assert prune_reason(_study_with_finished([0.9, 0.8, 0.7]), [0.1, 0.2], rule) is None  # 3 < startup_trials
    study = _study_with_finished([0.9, 0.8, 0.7, 0.6])
    assert prune_reason(study, [0.5, 0.76], rule) is None  # best 0.76 is above the median 0.75
    assert prune_reason(study, [0.5, 0.74], rule) == (
        "best validation accuracy 0.7400 is below the 50th percentile (0.7500) of 4 finished trials"
    )
    floor = Pruning(kind="percentile", min_val_accuracy=0.3)
    assert (
        prune_reason(_study_with_finished([]), [0.2], floor)
        == "best validation accuracy 0.2000 is below min_val_accuracy 0.3"
    )
    assert prune_reason(study, [0.0], Pruning(kind="none")) is None


def test_storage_refuses_other_databases_and_a_second_new_study(tmp_path: Path) -> None:
    from edgekd.errors import UsageError
    from edgekd.sweep.storage import open_storage, open_study, storage_url

    with pytest.raises(UsageError, match=r"--storage mysql://u:\*\*\*@h/db: unsupported database 'mysql'"):
        storage_url(tmp_path, "mysql://u:secret@h/db")
    path = write(tmp_path, '"student.model.width" = { choices = [2, 4] }\n')
    _, sweep, _, _ = load_sweep_recipe(path)
    storage = open_storage(storage_url(tmp_path, None), sweep)
    open_study(storage, "s", sweep, "fingerprint-a", None, mode="new")
    with pytest.raises(UsageError, match="study 's' already exists in sqlite:///"):
        open_study(storage, "s", sweep, "fingerprint-a", None, mode="new")
    with pytest.raises(UsageError, match="study 's' was made for another search space"):
        open_study(storage, "s", sweep, "fingerprint-b", None, mode="join")
    assert open_study(storage, "s", sweep, "fingerprint-a", None, mode="resume").study_name == "s"


def test_module_entry_point_prints_one_message_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, '"data.val_fraction" = { low = 0.1, high = 0.2 }\n')
    done = subprocess.run([sys.executable, "-m", "edgekd.sweep", str(path), "--workers", "2"],
                          check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: [sweep] space key 'data.val_fraction': [data] is shared by every trial")
    assert "Traceback" not in done.stderr and not (tmp_path / "sw").exists()


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sweep" / "digits_sweep.toml"


def test_the_example_sweep_passes_check_and_check_writes_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "digits_sweep.toml"  # the example as a user would copy it: the sweep dir is theirs
    copy.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "edgekd.sweep", str(copy), "--check", "--workers", "2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "recipe and search space OK" in done.stdout
    assert "constraint: p50_ms(onnx_int8@local) <= 0.05" in " ".join(done.stdout.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_sweep.toml"], "--check wrote something"
    recipe, sweep, raw, _ = load_sweep_recipe(EXAMPLE)
    check_space(recipe, raw, sweep, str(EXAMPLE))
    assert {"student.model.width", "student.model.depth", "distill.losses.0.temperature"} == set(sweep.space)


def test_check_refuses_a_bad_space_and_runs_no_trial(tmp_path: Path) -> None:
    path = write(tmp_path, '"teacher.train.epochs" = { choices = [1, 2] }\n')
    with pytest.raises(RecipeError, match="shared by every trial"):
        run_sweep(path, check=True)
    path = write(tmp_path, '"student.model.width" = { choices = [2, 4] }\n')
    with pytest.raises(UsageError, match="--check with --resume: --check runs no trials"):
        run_sweep(path, check=True, resume=True)
    assert run_sweep(path, check=True) == tmp_path / "sw"
    assert not (tmp_path / "sw").exists()


def test_resume_without_a_study_is_refused_and_makes_no_sweep_directory(tmp_path: Path) -> None:
    path = write(tmp_path, '"student.model.width" = { choices = [2, 4] }\n')
    with pytest.raises(UsageError, match=r"no study 's' to resume in sqlite:///.*/sw/study.sqlite3"):
        run_sweep(path, resume=True)
    assert not (tmp_path / "sw").exists(), "a refused --resume left an empty sweep directory and study file"
