"""`edgekd targets doctor NAME` for a phone: one Check per thing a benchmark relies on."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from edgekd.bench.doctor import Check
from edgekd.errors import EdgekdError, TargetError
from edgekd.targets.adb.probe import cpu_mask

if TYPE_CHECKING:
    from edgekd.targets.adb.target import AdbTarget

MIN_FREE_MB = 200
MIN_BATTERY_PERCENT = 20  # below this Android's battery saver may cap clocks
MIN_SDK = 23  # Android 6: toybox with sha256sum, mktemp -d and taskset


def doctor_checks(target: AdbTarget) -> list[Check]:
    checks: list[Check] = []
    try:
        version = target._adb("version", serial=False, timeout=15).stdout.splitlines()
        checks.append(Check("adb client", True, version[1] if len(version) > 1 else " ".join(version)))
        target.connect()
    except TargetError as exc:
        return [*checks, Check("connection", False, exc.message, exc.hint)]
    checks.append(Check("connection", True, f"{target.serial}: device, work dir {target.workdir}"))
    state = target.probe()
    checks.append(
        Check(
            "ABI",
            state.abi is not None,
            state.abi or "ro.product.cpu.abi is not set",
            None if state.abi else "is this an Android device?",
        )
    )
    sdk_ok = state.sdk is not None and state.sdk >= MIN_SDK
    checks.append(
        Check(
            "SDK level",
            sdk_ok,
            f"API {state.sdk} (Android {state.props.get('ro.build.version.release')})",
            None if sdk_ok else f"edgekd needs Android API {MIN_SDK}+ (toybox sha256sum, mktemp, taskset)",
        )
    )
    checks.append(Check("model", True, f"{state.model} ({state.props.get('ro.soc.model') or '?'})"))
    free_mb = state.free_kb / 1024 if state.free_kb is not None else None
    checks.append(
        Check(
            f"free space in {target.entry.workdir}",
            free_mb is not None and free_mb >= MIN_FREE_MB,
            f"{free_mb:.0f} MB free" if free_mb is not None else "`df` printed nothing usable",
            None if free_mb is not None and free_mb >= MIN_FREE_MB else f"free at least {MIN_FREE_MB} MB on the phone",
        )
    )
    powered = state.on_power()
    level = int(state.battery["level"]) if state.battery.get("level", "").isdigit() else None
    energy_note = (
        (
            "energy allowed while charging (flagged)"
            if target.allow_charging
            else "energy will be refused while charging; latency is unaffected"
        )
        if powered
        else "energy can be measured"
    )
    checks.append(
        Check(
            "battery",
            level is None or level >= MIN_BATTERY_PERCENT,
            f"{level if level is not None else '?'}%, "
            + (f"on {'/'.join(powered)} power" if powered else "on battery")
            + f": {energy_note}",
            "charge the phone first (low battery turns on power saving and throttles)"
            if level is not None and level < MIN_BATTERY_PERCENT
            else (
                "for energy: connect over Wi-Fi (`adb tcpip 5555`), unplug, or set allow_charging = true"
                if powered and not target.allow_charging
                else None
            ),
        )
    )
    status = state.thermal_status_name()
    # Android < 10 has no thermalservice: the status is unknown, which is no reason to refuse the phone.
    thermal_ok = state.thermal_status is None or state.thermal_status <= 1
    hottest = max(state.temperatures_c.items(), key=lambda kv: kv[1], default=None)
    known = status or "unknown (`dumpsys thermalservice` reports no status; Android < 10 has none)"
    checks.append(
        Check(
            "thermal status",
            thermal_ok,
            known + (f", hottest zone {hottest[0]} {hottest[1]:.1f} °C" if hottest else ""),
            None if thermal_ok else "let the phone cool down (screen off, out of the sun) before benchmarking",
        )
    )
    for cluster in state.clusters:
        clock = f", max {cluster.max_khz / 1e6:.2f} GHz" if cluster.max_khz else ""
        checks.append(
            Check(
                f"governor {cluster.policy}",
                cluster.governor is not None,
                f"cpus {','.join(map(str, cluster.cpus))}: {cluster.governor}{clock}",
            )
        )
    big = target.big_cores(state)
    source = "from targets.toml" if target.entry.big_cores else "fastest cluster"
    checks.append(
        Check(
            "big cores",
            bool(big),
            f"mask {cpu_mask(big)} = cpus {big} ({source})" if big else "no cpufreq policies readable",
            None if big else 'set big_cores = "c0" in targets.toml',
        )
    )
    checks.append(_mode_check(target))
    if target.entry.mode == "runner" and checks[-1].ok:
        checks.append(_runtime_check(target))
    return checks


def _runtime_check(target: AdbTarget) -> Check:
    """What bench needs in runner mode: the runner loading at least one runtime with the phone's python
    (a --baseline run each: the same imports a benchmark does, so a broken wheel shows here too)."""
    from edgekd.bench.orchestrate import parse_runner_output, runner_path

    runner = target.push(runner_path())
    found, problems = [], []
    for runtime, package in (("litert", "ai-edge-litert"), ("tflite", "tflite-runtime"), ("ort", "onnxruntime")):
        done = target.run([*target.python_argv(), runner, "--baseline", "--runtime", runtime], timeout=120)
        try:
            document = parse_runner_output(done, target.name)
            found.append(f"{package} {document['versions']['runtime']}")
        except EdgekdError as exc:
            problems.append(f"{package}: {exc.message.removeprefix(target.name + ': ')}")
    detail = "; ".join([*found, *problems])
    return Check(
        "inference runtime (runner mode)",
        bool(found),
        detail[:400],
        None
        if found
        else "install one in the phone's python: pip install ai-edge-litert (.tflite) or "
        'onnxruntime (.onnx); or use mode = "benchmark_model" with TFLite\'s benchmark binary',
    )


def _mode_check(target: AdbTarget) -> Check:
    mode = target.entry.mode
    if mode == "runner":
        probe = target._shell(
            shlex.join(
                [*target.python_argv(), "-c", "import sys, numpy; print(sys.version.split()[0], numpy.__version__)"]
            )
        )
        ok = probe.returncode == 0
        return Check(
            "python (runner mode)",
            ok,
            probe.stdout.strip() if ok else (probe.stderr or probe.stdout).strip()[-200:],
            None
            if ok
            else "adb's shell user needs a python3 with numpy it may run: Termux's is private to "
            'the app unless the phone is rooted (python = "su 0 …/python3"); or copy one to /data/local/tmp '
            'and set python; or use mode = "benchmark_model"',
        )
    binary = target.entry.benchmark_model if mode == "benchmark_model" else target.entry.onnxruntime_perf_test
    ok = binary is not None and binary.is_file()
    return Check(f"{mode} binary", ok, str(binary), None if ok else "set its path in targets.toml")
