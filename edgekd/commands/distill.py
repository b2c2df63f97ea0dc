"""`edgekd distill RECIPE`: data + teacher + distillation alone, optionally on N processes (DDP).

Plain typer-annotated function; cli.py registers it. Heavy packages are imported inside.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgekd import console
from edgekd.errors import UsageError


def distill_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe .toml (its data, teacher, student and distill sections)")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="directory to write into (default: runs/<name>-distill)")
    ] = None,
    nproc: Annotated[int, typer.Option("--nproc", help="processes; >1 runs DDP via torchrun (gloo on CPU)", min=1)] = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="reuse a finished teacher and continue from the last epoch checkpoint")
    ] = False,
    labeled_fraction: Annotated[
        float | None, typer.Option(help="override the recipe's data.labeled_fraction, in (0, 1]")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the recipe's run.seed")] = None,
    transfer_set: Annotated[
        Path | None,
        typer.Option(
            "--transfer-set",
            help="only write the samples to score (ids, x) as .npz for a soft-label teacher, then stop",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Train (or load) the teacher, distil the student and the scratch baseline, and show what KD bought."""
    from edgekd.data.datasets import load_dataset
    from edgekd.recipe import load_recipe, resolve_path

    if json_output:
        console.set_mode(quiet=console.is_quiet(), json_output=True)
    if labeled_fraction is not None and not 0.0 < labeled_fraction <= 1.0:
        raise UsageError(f"--labeled-fraction must lie in (0, 1], got {labeled_fraction}")
    parsed, base = load_recipe(recipe)
    seed = parsed.run.seed if seed is None else seed
    fraction = parsed.data.labeled_fraction if labeled_fraction is None else labeled_fraction
    run_dir = out or resolve_path(base, parsed.run.out) or base / "runs" / f"{parsed.run.name}-distill"
    data = load_dataset(parsed.data, seed, base=base)
    if transfer_set is not None:
        _write_transfer_set(data, transfer_set)
        return
    from edgekd.distill.models import check_factory

    check_factory(
        parsed.student.model, data.input_shape, data.num_classes
    )  # a factory that cannot work: say so before training
    teacher = _teacher(parsed, data, seed=seed, run_dir=run_dir, base=base, resume=resume)
    distill_dir = run_dir / "distill"
    if nproc > 1:
        metrics, artifacts = _distributed(
            parsed, data, teacher, seed=seed, fraction=fraction, out_dir=distill_dir, nproc=nproc, resume=resume
        )
    else:
        from edgekd.distill.api import distill

        outcome = distill(teacher, parsed.student, parsed.distill, data, seed=seed, out_dir=distill_dir,
                          labeled_fraction=fraction, resume=resume)  # fmt: skip
        metrics, artifacts = outcome.metrics, [str(a.path) for a in outcome.artifacts]
    _show(metrics, artifacts, teacher_path=str(teacher.path))


def request_key(parsed: Any, data: Any, seed: int) -> str:
    """What a finished teacher must have been made from to be reused by --resume."""
    from edgekd.distill.cache import data_fingerprint

    payload = {"teacher": parsed.teacher.model_dump(mode="json"), "seed": seed,
               "data": data_fingerprint(data.x_train, data.ids_train, data.preprocessing)}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _teacher(parsed: Any, data: Any, *, seed: int, run_dir: Path, base: Path, resume: bool) -> Any:
    from edgekd.artifacts import load_artifact
    from edgekd.distill.api import prepare_teacher
    from edgekd.errors import ModelError
    from edgekd.fileio import atomic_write_text

    teacher_dir = run_dir / "teacher"
    stamp = teacher_dir / "request.key"
    key = request_key(parsed, data, seed)
    if resume and stamp.exists() and stamp.read_text(encoding="utf-8").strip().startswith(key):
        try:
            artifact = load_artifact(stamp.read_text(encoding="utf-8").split()[1])
            console.say(f"[dim]reusing teacher {artifact.path}[/dim]")
            return artifact
        except (ModelError, IndexError):
            pass  # stale or damaged: train again
    artifact = prepare_teacher(parsed.teacher, data, seed=seed, out_dir=teacher_dir, base_dir=base, resume=resume)
    atomic_write_text(stamp, f"{key} {artifact.path}\n")
    return artifact


def _distributed(parsed: Any, data: Any, teacher: Any, *, seed: int, fraction: float, out_dir: Path, nproc: int,
                 resume: bool) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    from edgekd.distill.ddp import OUTCOME, launch

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / OUTCOME).unlink(missing_ok=True)
    data_path = out_dir / "ddp_data.npz"
    data.save(data_path)
    job = {"data": str(data_path), "preprocessing": data.preprocessing, "teacher": str(teacher.path),
           "student": parsed.student.model_dump(mode="json"), "distill": parsed.distill.model_dump(mode="json"),
           "seed": seed, "labeled_fraction": fraction, "out_dir": str(out_dir), "resume": resume}  # fmt: skip
    console.say(f"distilling on {nproc} processes (torchrun, DDP)…")
    done = launch(job, out_dir / "ddp_job.json", nproc)
    return done["metrics"], done["artifacts"]


def _show(metrics: dict[str, Any], artifacts: list[str], teacher_path: str) -> None:
    summary = {k: v for k, v in metrics.items() if k != "history"}
    if console.is_json():
        console.emit_json({"metrics": summary, "artifacts": artifacts, "teacher": teacher_path})
        return
    from rich.table import Table

    table = Table(title="distillation (accuracy on the held-out test split)")
    for column in ("model", "accuracy", "params", "FLOPs"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for role in ("teacher", "student", "scratch"):
        acc = metrics.get(f"{role}_accuracy")
        if acc is None and role == "scratch":
            continue
        label = {"student": "student (KD)", "scratch": "student (scratch)"}.get(role, role)
        table.add_row(
            label,
            "—" if acc is None else f"{acc:.2%}",
            _num(metrics.get(f"{role}_params")),
            _num(metrics.get(f"{role}_flops")),
        )
    console.say(table)
    check = metrics.get("teacher_check") or {}
    if check.get("preprocessing"):
        source = metrics.get("teacher_preprocessing_source")
        console.say(f"teacher inputs: {check['preprocessing']}" + (f" ({source.split(':')[0]})" if source else ""))
    if metrics.get("kd_minus_scratch") is not None:
        verdict = "within noise" if metrics["within_noise"] else "beyond noise"
        console.say(
            f"KD − scratch: {metrics['kd_minus_scratch'] * 100:+.1f} pt ({verdict}: {metrics['noise_test']['method']})"
        )
    for path in artifacts:
        console.say(f"wrote {path}")


def _num(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _write_transfer_set(data: Any, path: Path) -> None:
    """The "teacher behind an API" workflow, step 1: every sample with its id, for the teacher to score.

    `x` is what the student sees (preprocessed), `x_source` the sample before normalisation (the raw
    values as loaded, scaled to floats: uint8 images and digits in 0..1). Score them
    and save np.savez(file, ids=ids, logits=...) or probabilities=...; then [teacher] kind = "soft_labels".
    """
    import numpy as np

    from edgekd.distill.teacher_inputs import raw_preprocessing, student_preprocessing
    from edgekd.fileio import save_npz
    from edgekd.preprocessing import reprocess

    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    ids = np.concatenate([data.ids_train, data.ids_val, data.ids_test])
    split = np.array(["train"] * len(data.x_train) + ["val"] * len(data.x_val) + ["test"] * len(data.x_test))
    student = student_preprocessing(data)
    x_source = reprocess(
        x, student, raw_preprocessing(student)
    )  # the raw inputs as loaded: what [teacher] preprocessing = "raw" is
    save_npz(path, {"ids": ids, "x": x, "x_source": x_source, "split": split,
                    "label_names": np.array(data.source_label_names or data.label_names)})  # fmt: skip
    if console.is_json():
        console.emit_json({"transfer_set": str(path), "samples": len(ids)})
    else:
        console.say(f"wrote {len(ids)} samples to score into {path} (arrays ids, x, x_source, split)")
