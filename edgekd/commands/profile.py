"""`edgekd bench profile MODEL`: where the time goes, per op, on this machine.

ONNX models are profiled with ONNX Runtime's own profiler; a `.tflite` model op by op in LiteRT (each
operator timed as a model of its own, by the device runner's code: LiteRT's Python interpreter has no
per-op profiler), or read from a saved `benchmark_model --enable_op_profiling=true` output
(`--benchmark-output`), the way to profile a delegate on the device. Prints the top ops, time by op type, placement (and the
accelerator-fallback verdict), and with `--compare OTHER` the per-op-type comparison of the two models
(MODEL the baseline, e.g. fp32; OTHER e.g. its int8), with the Q/DQ node count of ONNX files.
Registered by cli.py / bench.py as `bench_app.command("profile")(profile_cmd)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgekd import console
from edgekd.errors import UsageError

OPTIMIZATIONS = ("all", "extended", "basic", "none")


def _profile(
    model: Path,
    *,
    runs: int,
    warmup: int,
    threads: int,
    providers: list[str] | None,
    optimization: str,
    benchmark_output: Path | None,
) -> Any:
    """The OpProfile of one model (ORT profiler for .onnx, a benchmark_model output for .tflite)."""
    suffix = model.suffix.lower()
    if suffix == ".onnx":
        if benchmark_output is not None:
            raise UsageError(
                "--benchmark-output is for .tflite models; an .onnx model is profiled with ORT",
                hint="leave --benchmark-output out for ONNX models",
            )
        from edgekd.profile.ort_profile import profile_onnx

        return profile_onnx(
            model, runs=runs, warmup=warmup, threads=threads, providers=providers, optimization=optimization
        )  # type: ignore[arg-type]
    if suffix == ".tflite":
        if benchmark_output is None:
            return _profile_tflite_op_by_op(model, runs=runs, warmup=warmup, threads=threads, providers=providers)
        from edgekd.profile.tflite_benchmark import parse_benchmark_file

        return parse_benchmark_file(benchmark_output, model=model.name, requested=providers or None)
    raise UsageError(f"cannot profile {model.name}: expected an .onnx or .tflite file", hint="give a model file")


def _profile_tflite_op_by_op(model: Path, *, runs: int, warmup: int, threads: int, providers: list[str] | None) -> Any:
    """A .tflite model profiled here op by op with the device runner's own code (LiteRT's Python interpreter
    has no per-op profiler; `--benchmark-output` reads benchmark_model's instead)."""
    from edgekd.errors import ModelError
    from edgekd.profile.schema import from_runner_document
    from edgekd.targets.runner import edgekd_runner as runner

    wanted = {p.upper() for p in providers or ["XNNPACK"]}
    if not wanted <= {"XNNPACK", "CPU"}:
        raise UsageError(
            f"--provider {', '.join(sorted(wanted))}: this machine profiles .tflite models with XNNPACK or CPU only",
            hint="profile other delegates on the device: benchmark_model --enable_op_profiling=true, then "
            "--benchmark-output",
        )
    if not model.is_file():
        raise UsageError(f"{model} does not exist", hint="give a .tflite file")
    try:
        runtime, module, version = runner.import_runtime("litert", str(model))
        session = runner.open_session(runtime, module, str(model), threads, "XNNPACK" in wanted)
        session.set_inputs(runner.generate_inputs(session.inputs(), 0))
        document: dict[str, Any] = session.profile(warmup, runs)
    except runner.RunnerError as exc:
        raise ModelError(f"cannot profile {model.name}: {exc.message}", hint=exc.hint or "check the model") from None
    document.update(runtime=runtime, versions={"runtime": version})
    return from_runner_document(document, model=model.name)


def profile_cmd(
    model: Annotated[Path, typer.Argument(help=".onnx or .tflite model")],
    runs: Annotated[int, typer.Option(help="profiled runs (after warm-up)", min=1)] = 50,
    warmup: Annotated[int, typer.Option(help="untimed runs first", min=0)] = 5,
    threads: Annotated[int, typer.Option(help="intra-op threads", min=1)] = 1,
    top: Annotated[int, typer.Option("--top", help="how many of the slowest ops to list", min=1)] = 10,
    compare: Annotated[
        Path | None, typer.Option("--compare", help="a second model (e.g. the int8 of MODEL): per-op-type comparison")
    ] = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="ORT execution provider to ask for, in order (repeat; default CPU); for .tflite the "
            "delegate benchmark_model was asked for (XNNPACK, NNAPI, GPU; default: those its log names)",
        ),
    ] = None,
    optimization: Annotated[
        str,
        typer.Option(
            help="ORT graph optimization: all (what bench runs), extended, basic, none (rows = the file's nodes)"
        ),
    ] = "all",
    benchmark_output: Annotated[
        Path | None,
        typer.Option("--benchmark-output", help=".tflite: saved output of benchmark_model --enable_op_profiling=true"),
    ] = None,
    compare_benchmark_output: Annotated[
        Path | None, typer.Option("--compare-benchmark-output", help="--compare .tflite: its benchmark_model output")
    ] = None,
    explorer: Annotated[
        Path | None,
        typer.Option("--explorer", help="write a Model Explorer node-data JSON (per-node latency) for MODEL"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the profile(s) as JSON")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Per-op profile of a model: slowest ops, time by op type, placement, and a comparison with --compare."""
    import json

    from edgekd.profile.placement import accelerator_fallback

    if optimization not in OPTIMIZATIONS:
        raise UsageError(f"--optimization {optimization!r} is not one of {', '.join(OPTIMIZATIONS)}")
    if compare_benchmark_output is not None and compare is None:
        raise UsageError("--compare-benchmark-output needs --compare OTHER_MODEL")
    if json_output:
        console.set_mode(quiet=console.is_quiet(), json_output=True)
    settings = {"runs": runs, "warmup": warmup, "threads": threads, "providers": provider, "optimization": optimization}
    base = _profile(model, benchmark_output=benchmark_output, **settings)  # type: ignore[arg-type]
    other = (
        _profile(compare, benchmark_output=compare_benchmark_output, **settings)  # type: ignore[arg-type]
        if compare is not None
        else None
    )
    document: dict[str, Any] = {
        "profiles": [p.to_dict() for p in (base, other) if p is not None],
        "verdicts": [v.to_dict() for p in (base, other) if p is not None for v in accelerator_fallback(p)],
    }
    if other is not None:
        document["comparison"] = _comparison(base, other, model, compare)
    if explorer is not None:
        document["explorer"] = _write_explorer(base, model, explorer)
    if out is not None:
        from edgekd.fileio import atomic_path

        with atomic_path(out, suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(document, indent=2, default=str) + "\n")
    if console.is_json():
        console.emit_json(document)
        return
    from edgekd.profile.printing import print_profile_views

    print_profile_views(base, other, document, top=top)


def _comparison(base: Any, other: Any, model: Path, compare: Path | None) -> dict[str, Any]:
    from edgekd.profile.views import count_qdq, int8_summary

    summary = int8_summary(base, other, compare if compare and compare.suffix.lower() == ".onnx" else None)
    if model.suffix.lower() == ".onnx":
        summary["qdq_nodes_base"] = count_qdq(model)
    return summary


def _write_explorer(profile: Any, model: Path, out: Path) -> dict[str, Any]:
    from edgekd.profile.model_explorer import onnx_keys, write_node_data

    keys = onnx_keys(model) if model.suffix.lower() == ".onnx" else None
    unmatched = write_node_data(profile, out, known_keys=keys)
    return {"path": str(out), "unmatched": unmatched}
