"""`edgekd bench MODEL --target NAME`, `edgekd bench history`, `edgekd bench compare A B`.

`bench` is a group whose unknown first word falls through to the default `model` command, so
`edgekd bench student.onnx` and `edgekd bench model student.onnx` are the same.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from edgekd import console
from edgekd.commands.bench_output import mib, mlperf_figures, ms, print_mlperf, print_results

DEFAULT_COMMAND = "model"
#: MLPerf Inference's single-stream rule: at least this many queries and this many seconds; p90 is the result.
MLPERF_MIN_RUNS = 1024
MLPERF_SECONDS = 60.0


class _DefaultToModel(TyperGroup):
    """Routes `bench FILE ...` to `bench model FILE ...` while keeping `bench history` / `bench compare`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=_DefaultToModel,
    help="Benchmark a model file on a target (`edgekd bench MODEL --target NAME`), list the history, compare runs.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _json_mode(json_output: bool) -> None:
    if json_output:
        console.set_mode(quiet=console.is_quiet(), json_output=True)


def _make_target(name: str, inventory: Path | None, config: Any) -> Any:
    """The named target, made with this bench's settings (--allow-charging)."""
    from edgekd.bench.target_settings import target_options
    from edgekd.inventory import make_target

    return make_target(name, inventory, options=target_options(config))


@bench_app.command(DEFAULT_COMMAND)
def bench_model(
    model: Annotated[list[Path], typer.Argument(help=".onnx / .tflite file(s); several are run interleaved")],
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="local, or a name in targets.toml; repeat for a fleet (run concurrently)"),
    ] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="targets.toml to read")] = None,
    runs: Annotated[int | None, typer.Option(help="timed runs per repeat", min=1)] = None,
    warmup: Annotated[int | None, typer.Option(help="untimed runs first", min=0)] = None,
    duration: Annotated[float | None, typer.Option(help="seconds per repeat instead of --runs", min=0.001)] = None,
    threads: Annotated[int | None, typer.Option(help="inference threads", min=1)] = None,
    repeats: Annotated[int | None, typer.Option(help="fresh runner processes per model", min=1)] = None,
    windows: Annotated[int | None, typer.Option(help="sustained mode: K windows per repeat", min=2)] = None,
    pin: Annotated[str | None, typer.Option(help="cores to pin to, e.g. 0 or 2,3")] = None,
    cooldown: Annotated[float | None, typer.Option(help="seconds of rest between runs", min=0)] = None,
    thermal_limit: Annotated[float | None, typer.Option(help="wait until below this °C before each run")] = None,
    inputs: Annotated[Path | None, typer.Option(help=".npz with one array per model input")] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option("--shape", help="size of an input with symbolic dimensions, NAME=1,3,224,224 (repeat per input)"),
    ] = None,
    xnnpack: Annotated[bool, typer.Option("--xnnpack/--no-xnnpack", help="TFLite XNNPACK delegate")] = True,
    energy: Annotated[bool, typer.Option("--energy/--no-energy", help="measure energy where a meter exists")] = True,
    allow_charging: Annotated[
        bool,
        typer.Option(
            "--allow-charging", help="Android: measure battery energy on USB/AC power anyway (results flagged)"
        ),
    ] = False,
    history: Annotated[bool, typer.Option("--history/--no-history", help="record in the SQLite history")] = True,
    mlperf: Annotated[
        bool,
        typer.Option(
            "--mlperf",
            help=f"MLPerf single-stream preset: each repeat runs ≥ {MLPERF_MIN_RUNS} times and ≥ "
            f"{MLPERF_SECONDS:g} s (a longer --duration is kept); p90 is the headline",
        ),
    ] = False,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="also take a per-op profile of each model (after the timed runs, in a second session; "
            "ONNX Runtime's profiler; TFLite: benchmark_model's where the target's entry names one, "
            "or in adb tool mode)",
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="also write full results (raw samples)")] = None,
    json_output: JsonOption = False,
) -> None:
    """Benchmark model files on one target or a fleet and print latency percentiles, memory and energy.

    With several --target, every target runs concurrently; a target that fails keeps the others' results,
    which are printed and recorded, and the command then exits non-zero naming the failed target(s)."""
    from edgekd.artifacts import describe_file
    from edgekd.bench.history import History
    from edgekd.config.bench import BenchConfig
    from edgekd.errors import UsageError
    from edgekd.fileio import atomic_write_json

    _json_mode(json_output)
    names = list(dict.fromkeys(target or ["local"]))
    options: dict[str, Any] = {
        "runs": runs,
        "warmup": warmup,
        "duration_s": duration,
        "threads": threads,
        "repeats": repeats,
        "sustained_windows": windows,
        "cooldown_s": cooldown,
        "thermal_limit_c": thermal_limit,
        "xnnpack": xnnpack,
        "energy": energy,
        "inputs": str(inputs) if inputs else None,
        "allow_charging": allow_charging or None,
        "profile": profile or None,
    }
    if pin is not None:
        try:
            options["pin_cores"] = [int(core) for core in pin.split(",")]
        except ValueError:
            raise UsageError(f"--pin {pin!r} is not a list of core numbers", hint="e.g. --pin 0 or --pin 2,3") from None
    _check_runs(runs, warmup)
    if mlperf:
        if runs is not None:
            raise UsageError(
                "--mlperf runs for a duration with a floor of runs; --runs cannot be combined with it",
                hint=f"leave --runs out (--mlperf means ≥ {MLPERF_MIN_RUNS} runs and "
                f"≥ {MLPERF_SECONDS:g} s), or give --duration for a longer run",
            )
        options["duration_s"] = max(MLPERF_SECONDS, duration or 0.0)
        options["min_runs"] = MLPERF_MIN_RUNS
    shapes = _parse_shapes(shape or [])
    config = BenchConfig(targets=names, **{k: v for k, v in options.items() if v is not None})
    artifacts = [describe_file(path) for path in model]
    devices = [_make_target(name, inventory, config) for name in names]  # unknown names fail before anything runs
    results, errors = _run(devices, artifacts, config, shapes)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    if history and results:
        History().record_run(
            run_id,
            None,
            results,
            {
                "command": "bench",
                "target": ",".join(names),
                "targets": names,
                "models": [str(p) for p in model],
                "failed": {n: str(e) for n, e in errors.items()},
            },
        )
    if out is not None:
        atomic_write_json(
            out,
            {
                "schema": "edgekd.bench/1",
                "run_id": run_id,
                "targets": names,
                "errors": {n: str(e) for n, e in errors.items()},
                "results": [r.to_dict() for r in results],
            },
        )
    recorded = run_id if history and results else None
    if console.is_json():
        console.emit_json(
            {
                "schema": "edgekd.bench/1",
                "run_id": recorded,
                "target": ",".join(names),
                "targets": names,
                "errors": {n: str(e) for n, e in errors.items()},
                "results": [
                    {
                        **r.summary(),
                        "latencies_ns": r.latencies_ns,
                        **({"mlperf": mlperf_figures(r, config)} if mlperf else {}),
                    }
                    for r in results
                ],
            }
        )
    elif results:
        for name in names:
            mine = [r for r in results if r.target == name]
            if mine:
                print_results(mine, recorded)
                if mlperf:
                    print_mlperf(mine, config)
    if not errors:
        return
    raise _failure(names, errors, results, recorded, out)


def _failure(
    names: list[str], errors: dict[str, Exception], results: list[Any], recorded: str | None, out: Path | None
) -> Exception:
    """The error that ends a bench with failed targets, saying truthfully what was kept and where."""
    from edgekd.errors import TargetError

    where = ", ".join([*([f"history run {recorded}"] if recorded else []), *([str(out)] if out else [])])
    owners = ", ".join(dict.fromkeys(r.target for r in results))
    kept = (
        f"results of {owners} were kept" + (f" ({where})" if where else " (printed above)")
        if results
        else "no result was kept"
    )
    if len(names) == 1 and results:
        kept = f"the {len(results)} result(s) of runs that finished were kept" + (f" ({where})" if where else "")
    if len(names) == 1:
        error = errors[names[0]]
        if not results:
            return error
        return TargetError(
            f"{getattr(error, 'message', error)}; {kept}",
            hint="the results are marked incomplete; " + (getattr(error, "hint", None) or "rerun"),
        )
    failed = "; ".join(f"{name}: {getattr(error, 'message', error)}" for name, error in errors.items())
    return TargetError(
        f"{len(errors)} of {len(names)} targets failed ({failed}); {kept}",
        hint="run `edgekd targets doctor NAME` for the failed target(s), then rerun them alone",
    )


def _check_runs(runs: int | None, warmup: int | None) -> None:
    """Bound the work a runner is asked for: it keeps every sample and sends them home as JSON."""
    from edgekd.bench.orchestrate import MAX_RUNS
    from edgekd.errors import UsageError

    for option, value in (("--runs", runs), ("--warmup", warmup)):
        if value is not None and value > MAX_RUNS:
            raise UsageError(
                f"{option} {value} is more than {MAX_RUNS:,} runs per runner process",
                hint="for a long benchmark use --duration SECONDS (and --repeats for more processes)",
            )


def _parse_shapes(values: list[str]) -> dict[str, list[int]]:
    """--shape NAME=1,3,32,32 (or 1,3,32,32 for a one-input model) -> {name: shape}."""
    from edgekd.errors import UsageError

    shapes: dict[str, list[int]] = {}
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            shape = [int(d) for d in dims.split(",")]
        except ValueError:
            shape = []
        if not shape or min(shape) < 1:
            raise UsageError(
                f"--shape {value!r} is not a shape",
                hint="give NAME=1,3,224,224: positive sizes, "
                "one --shape per input (the name may be left out for a one-input model)",
            )
        if name in shapes:
            raise UsageError(f"--shape gives input {name or '(unnamed)'} twice", hint="one --shape per input")
        shapes[name] = shape
    return shapes


def _run(
    devices: list[Any], artifacts: list[Any], config: Any, shapes: dict[str, list[int]]
) -> tuple[list[Any], dict[str, Exception]]:
    """One target: bench_artifacts with a progress bar. Several: targets.fleet.bench_fleet, concurrently."""
    from functools import partial

    from edgekd.bench.orchestrate import bench_artifacts

    if len(devices) == 1:
        from edgekd.bench.orchestrate import TargetLost

        try:
            with console.progress() as bar:  # other typed errors propagate as they are
                return bench_artifacts(devices[0], artifacts, config, progress=bar, shapes=shapes), {}
        except TargetLost as lost:  # the repeats that finished are kept, recorded and reported
            return list(lost.results), {devices[0].name: lost}
    from edgekd.bench.fleet import bench_fleet

    # Several models on one target run interleaved (A B A B) in one call, as on a single target.
    outcome = bench_fleet(
        devices,
        artifacts,
        config,
        per_artifact=len(artifacts) == 1 or not config.interleave,
        bench=partial(bench_artifacts, shapes=shapes),
    )
    return outcome.all_results(), dict(outcome.errors)


@bench_app.command("history")
def bench_history(
    run: Annotated[str | None, typer.Argument(help="show this run's results (id, prefix, latest, latest~N)")] = None,
    limit: Annotated[int, typer.Option(help="how many runs to list", min=1)] = 20,
    json_output: JsonOption = False,
) -> None:
    """List recorded benchmark runs, or the results of one run."""
    from rich.table import Table

    from edgekd.bench.history import History

    _json_mode(json_output)
    store = History()
    if run is not None:
        run_id = store.resolve(run)
        rows = [r.get("summary", r) for r in store.results(run_id)]
        if console.is_json():
            console.emit_json({"run_id": run_id, "results": rows})
            return
        table = Table(title=f"run {run_id}")
        for column in ("model", "target", "runtime", "p50 ms", "p99 ms", "peak RSS MiB", "J/inference"):
            table.add_column(column)
        for row in rows:
            energy = row.get("energy_j_per_inference")
            table.add_row(
                str(row.get("artifact")),
                str(row.get("target")),
                str(row.get("runtime")),
                ms(row.get("p50_ms")),
                ms(row.get("p99_ms")),
                mib(row.get("peak_rss_kb")),
                "n/a" if energy is None else f"{energy:.3g}",
            )
        console.say(table)
        return
    runs = store.runs(limit=limit)
    if console.is_json():
        console.emit_json({"history": str(store.path), "runs": runs})
        return
    table = Table(title=f"benchmark history ({store.path})")
    for column in ("run", "created", "results", "recipe"):
        table.add_column(column)
    for entry in runs:
        table.add_row(entry["run_id"], entry["created"], str(entry["results"]), (entry["recipe_hash"] or "")[:12])
    console.say(table)


@bench_app.command("compare")
def bench_compare(
    a: Annotated[str, typer.Argument(help="reference: run id / prefix / latest~1, or a results .json")],
    b: Annotated[str, typer.Argument(help="candidate: run id / prefix / latest, or a results .json")],
    threshold: Annotated[float, typer.Option(help="relative slow-down that counts (0.05 = 5%)", min=0)] = 0.05,
    alpha: Annotated[float, typer.Option(help="significance level of the Mann-Whitney U test")] = 0.01,
    json_output: JsonOption = False,
) -> None:
    """Compare two runs; exits 1 when B is significantly slower than A (for CI)."""
    from rich.table import Table

    from edgekd.bench.compare import compare

    _json_mode(json_output)
    comparison = compare(a, b, threshold=threshold, alpha=alpha)
    if console.is_json():
        console.emit_json(comparison.to_dict())
    else:
        table = Table(title=f"{comparison.a} → {comparison.b}")
        for column in ("model", "target", "A p50 ms", "B p50 ms", "change", "p", "verdict"):
            table.add_column(column)
        for row in comparison.rows:
            colour = {"regression": "red", "improvement": "green"}.get(row.verdict, "white")
            table.add_row(
                row.artifact,
                str(row.target),
                ms(row.a_p50_ms),
                ms(row.b_p50_ms),
                "" if row.change is None else f"{row.change:+.1%}",
                "" if row.p_value is None else f"{row.p_value:.2g}",
                f"[{colour}]{row.verdict}[/]",
            )
        console.say(table)
    if comparison.exit_code:
        raise typer.Exit(code=comparison.exit_code)


def _register_profile() -> None:
    """`edgekd bench profile MODEL` (edgekd.commands.profile); `_DefaultToModel` routes only unknown first words
    to `bench model`, so a registered `profile` is reached by name."""
    from edgekd.commands.profile import profile_cmd

    bench_app.command("profile")(profile_cmd)


_register_profile()
