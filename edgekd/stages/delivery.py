"""Stages that prove and deliver: verify (parity gate) -> bench (targets) -> handoff (firmware) -> report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd import __version__
from edgekd.artifacts import MODEL_FORMATS, Artifact, create_artifact
from edgekd.errors import EdgekdError, HandoffError
from edgekd.pipeline import KeyContext, StageContext, StageResult, installed_version
from edgekd.recipe import Recipe, resolve_path
from edgekd.stages import in_pipeline_order
from edgekd.stages.base import BaseStage
from edgekd.stages.conversion import CALIBRATION, STUDENT
from edgekd.stages.training import DATASET, load_split_data

#: The stages whose files are deployable models (the student and its exports), in pipeline order.
MODEL_STAGES = in_pipeline_order({"distill", "export", "quantize", "tflite"})


def deployable_models(ctx: StageContext) -> list[Artifact]:
    """The student and every file exported from it (not the teacher or the scratch baseline)."""
    models = [ctx.artifact(STUDENT)]
    for stage in MODEL_STAGES[1:]:
        models += [a for a in ctx.inputs.get(stage, []) if a.format in MODEL_FORMATS]
    return models


def tflm_row_wanted(recipe: Recipe) -> bool:
    """The verify stage adds a `tflm_int8` row when the handoff's firmware runs the model in TFLite Micro."""
    return recipe.handoff.enabled and recipe.handoff.runs_tflm and "int8" in recipe.tflite.precisions


def _tflm_model(ctx: StageContext, models: list[Artifact]) -> Artifact | None:
    """The int8 file the firmware runs: the quantization ladder's TFLM pick when it made one (the handoff takes
    it), else the first int8 TFLite file."""
    from edgekd.stages.quant_ladder import handoff_pick

    pick = handoff_pick(ctx.recipe, ctx.summaries.get("quantize", {}))
    if pick is not None and pick[0] == "tflm":
        chosen = next((m for m in models if m.path.name == pick[1]["model"] and m.format == "tflite"), None)
        if chosen is not None:
            return chosen
    return next((m for m in models if m.format == "tflite" and m.precision == "int8"), None)


class VerifyStage(BaseStage):
    name = "verify"
    needs = ("data", *MODEL_STAGES)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"verify": recipe.verify.model_dump(mode="json"), "tflm": tflm_row_wanted(recipe)}

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        # the torch reference, ONNX files in onnxruntime (onnx reads their graphs for the op audit), TFLite
        # files in ai-edge-litert, and the firmware path's int8 file in TensorFlow Lite Micro
        litert = ("ai-edge-litert",) if ctx.recipe.tflite.enabled else ()
        tflm = ("tflite-micro",) if tflm_row_wanted(ctx.recipe) else ()
        return ("numpy", "torch", "onnx", "onnxruntime", *litert, *tflm)

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.verify.parity import cross_check_converters, verify_artifacts

        data = load_split_data(ctx)
        models = deployable_models(ctx)
        report = verify_artifacts(ctx.artifact(STUDENT), models, data.x_test, data.y_test, ctx.recipe.verify)
        if tflm_row_wanted(ctx.recipe):
            # the firmware path: the int8 file inside TensorFlow Lite Micro, gated like the other int8 rows
            from edgekd.verify.backends import predict
            from edgekd.verify.tflm_accuracy import tflm_parity_row

            int8 = _tflm_model(ctx, models)
            if int8 is not None:
                reference = predict(ctx.artifact(STUDENT), data.x_test)
                report.rows.append(tflm_parity_row(reference, int8, data.x_test, data.y_test, ctx.recipe.verify.int8))
        failed = [row["artifact"] for row in report.rows if not row["passed"]]
        cross = cross_check_converters(models, data.x_test)  # empty unless two TFLite converters ran
        return StageResult([], {"rows": report.rows, "failed": failed, "cross_converter": cross})

    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        if not recipe.verify.fail_run:
            return None
        from edgekd.verify.parity import parity_error

        rows = [row for row in summary.get("rows", []) if isinstance(row, dict)]
        return parity_error(rows)


class BenchStage(BaseStage):
    """Benchmark the deployable models on every [bench] target, concurrently (targets.fleet.bench_fleet).

    A target that fails does not lose the others' results: they are kept in the stage's manifest (and so
    in the report), and the run then fails after this stage (`gate`) naming the failed target(s); handoff
    is skipped. Being a recorded outcome, a plain rerun reports the same failure from the cache; the hint
    says how to retry (`--only bench --only report --force`). When every target fails there is nothing to
    keep, and the stage itself fails (a rerun retries it)."""

    name = "bench"
    needs = ("data", *MODEL_STAGES)

    def enabled(self, recipe: Recipe) -> bool:
        return recipe.bench.enabled and bool(recipe.bench.targets)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"bench": recipe.bench.model_dump(mode="json")}

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        # the host side: it runs the local target's runner (onnxruntime / ai-edge-litert), torch models (host
        # only) and makes the inputs; a remote device's own runtimes are part of its identity, not installed here
        litert = ("ai-edge-litert",) if ctx.recipe.tflite.enabled else ()
        return ("numpy", "torch", "onnxruntime", *litert)

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        """Per target: its resolved inventory entry and the device identity (no connection needed), so pointing
        `pi5` at another board, or editing its entry, reruns the bench instead of reusing old latencies."""
        from edgekd.inventory import load_inventory, make_target

        entries, _ = load_inventory(None)
        targets: dict[str, Any] = {}
        for name in dict.fromkeys(ctx.recipe.bench.targets):
            target = make_target(name, None)  # an unknown name fails here, naming the known ones
            targets[name] = {"entry": entries[name], "identity": target.identity()}
        return {"targets": targets}

    def run(self, ctx: StageContext) -> StageResult:
        from functools import partial

        from edgekd.bench.fleet import bench_fleet
        from edgekd.bench.orchestrate import bench_artifacts
        from edgekd.bench.target_settings import target_options
        from edgekd.errors import TargetError
        from edgekd.inventory import make_target

        config = ctx.recipe.bench
        if config.inputs:  # relative to the recipe's folder, like every path in a recipe
            config = config.model_copy(update={"inputs": str(resolve_path(ctx.base_dir, Path(config.inputs)))})
        models = deployable_models(ctx)
        options = target_options(config)  # settings go in at construction, never patched on
        targets = [make_target(name, None, options=options) for name in dict.fromkeys(config.targets)]
        bench = partial(bench_artifacts, progress=ctx.progress) if len(targets) == 1 else None  # bars don't nest
        outcome = bench_fleet(targets, models, config, per_artifact=not config.interleave, bench=bench)
        results: list[dict[str, Any]] = []
        for target in targets:  # rows in the recipe's target order, whatever order they finished in
            for result in outcome.results.get(target.name, []):
                row = result.summary()
                row["latencies_ns"] = [int(ns) for ns in result.latencies_ns]  # raw samples, as the runner measured
                results.append(row)
        failed = {name: str(error) for name, error in outcome.errors.items()}
        if failed and not results:
            if len(outcome.errors) == 1:
                raise next(iter(outcome.errors.values()))  # one target: its own typed error
            lines = "\n".join(f"  {name}: {message}" for name, message in failed.items())
            raise TargetError(
                f"bench failed on every target:\n{lines}",
                hint="run `edgekd targets doctor NAME` for each target, then rerun",
            )
        return StageResult([], {"results": results, "failed_targets": failed})

    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        from edgekd.errors import TargetError

        failed = summary.get("failed_targets") or {}
        if not failed:
            return None
        kept = sorted({row.get("target") for row in summary.get("results", [])} - set(failed))
        lines = "\n".join(f"  {name}: {message}" for name, message in failed.items())
        return TargetError(
            f"bench failed on {len(failed)} of {len(failed) + len(kept)} target(s) (results of "
            f"{', '.join(kept)} are kept in the report):\n{lines}",
            hint="fix the target (`edgekd targets doctor NAME`), then `edgekd run RECIPE --only bench --only report "
            "--force` to benchmark again",
        )


class HandoffStage(BaseStage):
    name = "handoff"
    needs = ("data", "calibrate", *MODEL_STAGES, "bench")

    def enabled(self, recipe: Recipe) -> bool:
        return recipe.handoff.enabled

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"handoff": recipe.handoff.model_dump(mode="json")}

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        # TFLM measures the arena and checks the ops; Vela compiles for an Ethos-U; the bundle records them all
        handoff = ctx.recipe.handoff
        tflm = ("tflite-micro",) if handoff.runs_tflm else ()
        vela = ("ethos-u-vela",) if handoff.platform.startswith("ethos-u") else ()
        return ("numpy", "ai-edge-litert", *tflm, *vela, *BUNDLE_VERSIONS)

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.handoff.bundle import build_handoff

        wanted = ctx.recipe.handoff.artifact
        chosen, ladder_note = _ladder_choice(ctx)
        if chosen is not None:
            wanted = chosen.name
        else:
            chosen = ctx.find(wanted)
        if chosen is None or chosen.format != "tflite":
            tflites = sorted(a.name for a in ctx.all_inputs() if a.format == "tflite")
            raise HandoffError(
                f"[handoff] artifact {wanted!r} is not a TFLite file produced by this run",
                hint=f"choose one of: {', '.join(tflites) or 'none (enable [tflite])'}",
            )
        dataset = ctx.artifact(DATASET)
        bench_rows = [r for r in ctx.summaries.get("bench", {}).get("results", []) if r.get("artifact") == wanted]
        options = ctx.recipe.handoff  # tflm_include folders are relative to the recipe's folder
        options = options.model_copy(
            update={"tflm_include": [resolve_path(ctx.base_dir, d) for d in options.tflm_include]}
        )
        result = build_handoff(
            chosen, ctx.workdir / "handoff", options,
            labels=dataset.config.get("label_names", []), preprocessing=dataset.config.get("preprocessing", {}),
            calibration=ctx.find(CALIBRATION), bench_summary=bench_rows, versions=tool_versions(),
        )  # fmt: skip
        bundle = create_artifact(result.path, name="handoff", format="dir", parent=chosen, producer="handoff")
        artifacts = [bundle]
        if result.zip_path is not None and result.zip_path.exists():
            artifacts.append(
                create_artifact(result.zip_path, name="handoff_zip", format="zip", parent=chosen, producer="handoff")
            )
        summary = result.summary()
        summary["path"] = "handoff"
        summary["zip"] = "handoff.zip" if result.zip_path is not None else None  # where it lands, not its temp path
        summary["chosen_by"] = ladder_note or f"[handoff] artifact = {ctx.recipe.handoff.artifact!r}"
        return StageResult(artifacts, summary)


def _ladder_choice(ctx: StageContext) -> tuple[Artifact | None, str | None]:
    """The quantization ladder's recommended model for the handoff platform's runtime (micro: TFLM, else LiteRT)
    and a sentence saying so; (None, None) when no ladder ran, it recommended nothing there, or the recipe names
    the handoff artifact explicitly (the user's choice wins)."""
    from edgekd.stages.quant_ladder import handoff_pick

    if "artifact" in ctx.recipe.handoff.model_fields_set:
        return None, None
    pick = handoff_pick(ctx.recipe, ctx.summaries.get("quantize", {}))
    if pick is None:
        return None, None
    runtime, entry = pick
    chosen = next((a for a in ctx.inputs.get("quantize", []) if a.path.name == entry["model"]), None)
    if chosen is None or chosen.format != "tflite":
        return None, None
    return chosen, (
        f"quantization ladder: rung {entry['rung']} ({entry['name']}), recommended for {runtime} "
        f"(accuracy drop {entry['drop']}, within max_accuracy_drop {ctx.recipe.quantize.max_accuracy_drop})"
    )


class ReportStage(BaseStage):
    name = "report"
    needs = ("data", "teacher", *MODEL_STAGES, "calibrate", "verify", "bench", "handoff")
    runs_after_failure = True  # a failed parity gate still gets its report

    def config(self, recipe: Recipe) -> dict[str, Any]:
        # the recipe's name and hash are in report.json's identity: a renamed recipe rewrites its report
        return {"report": recipe.report.model_dump(mode="json"), "summaries_of": list(self.needs),
                "recipe": {"name": recipe.run.name, "hash": recipe.recipe_hash()}}  # fmt: skip

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.report import write_reports
        from edgekd.report.build import build_report

        report = build_report(ctx.run_dir, recipe=ctx.recipe)
        paths = write_reports(ctx.workdir, report, ctx.recipe.report)
        artifacts = [
            create_artifact(p, name=p.name.replace(".", "_"), format=p.suffix.lstrip("."), producer="report")
            for p in paths
        ]
        if ctx.recipe.report.history:
            _record_history(ctx, report)
        return StageResult(artifacts, {"files": [p.name for p in paths]})


def _record_history(ctx: StageContext, report: dict[str, Any]) -> None:
    from edgekd.bench.history import History

    History().record_run(
        run_id=f"{ctx.recipe.run.name}:{ctx.run_dir.resolve()}",
        recipe_hash=ctx.recipe.recipe_hash(),
        results=report.get("bench", []),
        meta={"run_dir": str(ctx.run_dir.resolve()), "report": report},
    )


#: Tools whose versions the handoff bundle records (they shaped its model); installed ones only.
BUNDLE_VERSIONS = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnx2tf",
    "tensorflow-cpu",
    "ai-edge-litert",
    "litert-torch",
    "tflite-micro",
)


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shaped the artifacts (for the handoff bundle), looked up like the cache keys'."""
    versions = {"edgekd": __version__}
    for package in BUNDLE_VERSIONS:
        version = installed_version(package)
        if version != "absent":
            versions[package] = version
    return versions
