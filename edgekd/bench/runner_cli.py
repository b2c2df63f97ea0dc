"""The runner's command line and its JSON answer: what edgekd asks a device runner and how it reads the reply.

The runner (edgekd/targets/runner/edgekd_runner.py) is the one program copied to devices; this module builds
its argv from a bench config and turns its edgekd.run/1 document (or its absence) into data or a typed error.
Orchestration (edgekd.bench.orchestrate) calls these once per run.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.config.bench import BenchConfig
from edgekd.errors import BenchError, RecipeError, TargetError
from edgekd.target_protocol import Completed, Target

RUN_SCHEMA = "edgekd.run/1"
BENCHMARKABLE = {"onnx": "ort", "tflite": None, "torch": "torch"}  # format -> runtime (None: config's choice)
TORCH_RUNNER = "edgekd.bench.torch_runner"  # host-only: devices have no torch
MAX_RUNS = 1_000_000  # timed (or warm-up) runs per runner process; the runner refuses more too
#: Input name ("" for the only input) -> its shape, given with `edgekd bench --shape`.
Shapes = dict[str, list[int]]


def runner_path() -> Path:
    """The one runner file that is copied to devices."""
    return Path(str(resources.files("edgekd.targets.runner").joinpath("edgekd_runner.py")))


def check_format(artifact: Artifact) -> None:
    """Refuse a file no runtime here benchmarks."""
    if artifact.format not in BENCHMARKABLE:
        raise BenchError(
            f"cannot benchmark {artifact.path.name}: format '{artifact.format}' has no runtime",
            hint="benchmark a .onnx, .tflite or torch (.pt with its sidecar) file",
        )


def runtime_for(artifact: Artifact, config: BenchConfig) -> str:
    """The runner's --runtime for the artifact (a TFLite file runs on the config's tflite_runtime)."""
    check_format(artifact)
    return BENCHMARKABLE[artifact.format] or config.tflite_runtime


def runner_argv(
    target: Target,
    runner: str,
    model: str | None,
    runtime: str,
    config: BenchConfig,
    *,
    runs: int | None = None,
    inputs: str | None = None,
    shapes: Shapes | None = None,
    recorded: Shapes | None = None,
    profile: bool = False,
) -> list[str]:
    """The runner command line. `model=None` is the empty-model baseline; `runs=0` the energy reference;
    `inputs` the remote path of the pushed inputs file; `shapes` the user's --shape, `recorded` the
    shapes the model's sidecar holds (the runner uses them only for symbolic dimensions they fit);
    `profile` adds the per-op profile after the timed runs."""
    if runtime == "torch":  # the host's torch runner takes the device runner's options
        argv = [*target.python_argv(), "-m", TORCH_RUNNER, "--threads", str(config.threads)]
    else:
        argv = [*target.python_argv(), runner, "--runtime", runtime, "--threads", str(config.threads)]
    if model is None:
        return [*argv, "--baseline"]
    argv += ["--model", model, "--warmup", str(config.warmup), "--seed", str(config.seed)]
    if runs is not None:
        argv += ["--runs", str(runs)]
    elif config.duration_s is not None:
        argv += ["--duration", repr(config.duration_s)]
        if config.min_runs:
            argv += ["--min-runs", str(config.min_runs)]
    else:
        argv += ["--runs", str(config.runs)]
    if config.sustained_windows and runs is None:
        argv += ["--windows", str(config.sustained_windows)]
    if config.pin_cores:
        argv += ["--pin", ",".join(str(core) for core in config.pin_cores)]
    if not config.xnnpack:
        argv.append("--no-xnnpack")
    if inputs is not None:
        argv += ["--inputs", inputs]
    for option, given in (("--shape", shapes), ("--sidecar-shape", recorded)):
        for name, shape in (given or {}).items():
            argv += [option, (f"{name}=" if name else "") + ",".join(str(d) for d in shape)]
    if profile and runs is None:
        argv.append("--profile")
    return argv


def recorded_shapes(artifact: Artifact) -> Shapes:
    """The input shapes the artifact's sidecar records where they are concrete past the batch dimension
    (a symbolic batch becomes 1): what the model was exported for, when the file itself says "height"."""
    shapes: Shapes = {}
    for spec in artifact.inputs or ():
        dims = list(spec.shape)
        concrete = [d for d in dims[1:] if isinstance(d, int) and d > 0]
        if dims and len(concrete) == len(dims) - 1:
            shapes[spec.name] = [dims[0] if isinstance(dims[0], int) and dims[0] > 0 else 1, *concrete]
    return shapes


def check_work_bounds(config: BenchConfig) -> None:
    """Refuse a run count no benchmark needs (the runner keeps every sample; JSON carries them home)."""
    for field in ("runs", "warmup", "min_runs"):
        value = getattr(config, field)
        if value is not None and value > MAX_RUNS:
            raise RecipeError(
                f"[bench] {field} = {value} is more than {MAX_RUNS:,} runs per runner process",
                hint="use duration_s for long runs, or repeats for more processes",
            )


def parse_runner_output(completed: Completed, target_name: str) -> dict[str, Any]:
    """The runner's JSON document; its error document becomes TargetError (device lacks something)
    or BenchError (model/inputs problem); no document at all is a TargetError with stderr's tail."""
    document = None
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("{"):
            try:
                candidate = json.loads(line)
            except ValueError:
                continue
            if isinstance(candidate, dict) and candidate.get("schema") == RUN_SCHEMA:
                document = candidate
                break
    if document is None:
        tail = "\n".join(completed.stderr.strip().splitlines()[-8:])
        hint = "is Python 3.9+ with numpy installed on the device?" if completed.returncode in (126, 127) else None
        how = (
            f"was killed by signal {-completed.returncode} ({_signal_name(-completed.returncode)})"
            if completed.returncode < 0
            else f"exited with status {completed.returncode}"
        )
        killed = completed.returncode in (-9, 137)  # SIGKILL, directly or as a shell reports it
        raise TargetError(
            f"the runner on {target_name} {how} without a result" + (f":\n{tail}" if tail else ""),
            hint=hint
            or f"run `edgekd targets doctor {target_name}`"
            + ("; a SIGKILL often means the device ran out of memory" if killed else ""),
        )
    if "error" in document:
        error = document["error"]
        if not isinstance(error, dict):  # a runner of another version, or garbled output
            raise BenchError(
                f"{target_name}: the runner reported an error it did not describe: {str(error)[:200]}",
                hint="is the runner on the device from this edgekd version? rerun to push it again",
            )
        kind = error.get("kind", "unknown")
        cls = (
            TargetError
            if kind in ("runtime_missing", "runtime_broken", "numpy_missing", "out_of_memory")
            else BenchError
        )
        raise cls(f"{target_name}: {error.get('message', kind)}", hint=error.get("hint"))
    return decode_thermal_zones(document)


def decode_thermal_zones(document: dict[str, Any]) -> dict[str, Any]:
    """The runner sends its thermal zones raw (`thermal_zones`); here they become °C per zone type
    (`temps_c`), in its environment and in every sustained window, by the one decoder of every target."""
    from edgekd.targets.thermal import zone_temperatures

    for part in [document.get("env"), *(document.get("windows") or [])]:
        if isinstance(part, dict) and "thermal_zones" in part:
            zones = part.pop("thermal_zones")
            part["temps_c"] = zone_temperatures(zones) if isinstance(zones, dict) else {}
    return document


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"
