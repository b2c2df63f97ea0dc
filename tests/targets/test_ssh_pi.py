"""The emulated Raspberry Pis over real SSH: the runner on both device flavours, doctor, info, PMIC power,
bench orchestration, the CLI and a fleet with a connection cut mid-run.

Device flavours (the test users' `python3` is aarch64 CPython under qemu-aarch64):
edgekd-pi5: ai-edge-litert 2.3 + numpy 2; edgekd-pi4: tflite-runtime 2.14 + numpy < 2.
Correctness only: nothing here asserts a timing or a memory figure measured under emulation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.artifacts import describe_file
from edgekd.bench.fleet import bench_fleet
from edgekd.config.bench import BenchConfig
from edgekd.targets.energy.pi_pmic import Pi5PmicMeter, parse_pmic_adc
from edgekd.targets.ssh.target import SshTarget
from tests.support.bench_models import RUNNER
from tests.support.sshd import LoopbackSshd
from tests.targets.conftest import RECORDINGS, make_entry

pytestmark = [pytest.mark.ssh, pytest.mark.aarch64]
FLAVOURS = {"edgekd-pi5": ("litert", 2), "edgekd-pi4": ("tflite", 1)}  # user -> (runtime, numpy major)


def _document(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _host_outputs(model: Path, inputs: Path, out: Path) -> dict[str, np.ndarray]:
    argv = [
        sys.executable,
        str(RUNNER),
        "--model",
        str(model),
        "--runtime",
        "litert",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--inputs",
        str(inputs),
        "--outputs",
        str(out),
    ]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    with np.load(out) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.slow
@pytest.mark.parametrize("user", sorted(FLAVOURS))
def test_runner_on_emulated_pi_matches_host(user: str, pi_entry, pi_models: dict[str, Path], tmp_path: Path) -> None:
    runtime, numpy_major = FLAVOURS[user]
    with SshTarget.from_entry("pi", pi_entry(user), Path("/")) as target:
        runner = target.push(RUNNER)
        inputs = target.push(pi_models["inputs"])
        for precision in ("fp32", "int8"):
            model = target.push(pi_models[precision])
            remote_out = f"{target.workdir}/out.{precision}.npz"
            argv = [
                *target.python_argv(),
                runner,
                "--model",
                model,
                "--runtime",
                "auto",
                "--runs",
                "3",
                "--warmup",
                "1",
                "--inputs",
                inputs,
                "--outputs",
                remote_out,
            ]
            done = target.run(argv, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            document = _document(done.stdout)
            assert document["schema"] == "edgekd.run/1" and document["runtime"] == runtime
            assert int(document["versions"]["numpy"].split(".")[0]) == numpy_major
            assert len(document["latencies_ns"]) == 3
            assert document["env"]["machine"] == "aarch64"
            target.pull(remote_out, tmp_path / f"{user}.{precision}.npz")
            with np.load(tmp_path / f"{user}.{precision}.npz") as data:
                on_pi = {key: data[key] for key in data.files}
            on_host = _host_outputs(pi_models[precision], pi_models["inputs"], tmp_path / f"host.{precision}.npz")
            assert on_pi.keys() == on_host.keys()
            for name, expected in on_host.items():
                assert on_pi[name].dtype == expected.dtype and on_pi[name].shape == expected.shape
                if precision == "fp32":
                    np.testing.assert_allclose(on_pi[name], expected, rtol=1e-5, atol=1e-5)
                else:  # int8 kernels may round differently by one quantum (reference vs XNNPACK)
                    assert np.abs(on_pi[name].astype(np.int32) - expected.astype(np.int32)).max() <= 1


@pytest.mark.covers("target:ssh")
def test_doctor_and_info_on_emulated_pis(pi_entry) -> None:
    pi5 = SshTarget.from_entry("pi5", pi_entry("edgekd-pi5", profile="rpi5", power="auto"), Path("/"))
    pi4 = SshTarget.from_entry("pi4", pi_entry("edgekd-pi4", profile="rpi4"), Path("/"))
    try:
        checks5 = {check.name: check for check in pi5.doctor()}
        checks4 = {check.name: check for check in pi4.doctor()}
        info = pi5.info()
    finally:
        pi5.cleanup()
        pi4.cleanup()
    expected = {
        "reachable",
        "arch",
        "python",
        "runtimes",
        "numpy",
        "disk",
        "governor",
        "temperature",
        "throttling",
        "power",
    }
    assert set(checks5) == expected and set(checks4) == expected
    assert all(check.ok for check in checks5.values()), [c for c in checks5.values() if not c.ok]
    assert checks5["arch"].detail.startswith("aarch64") and "Raspberry Pi 5" in checks5["arch"].detail
    assert "ai_edge_litert 2.3.0" in checks5["runtimes"].detail and "major 2" in checks5["numpy"].detail
    assert "tflite_runtime 2.14.0" in checks4["runtimes"].detail and "major 1" in checks4["numpy"].detail
    assert checks5["temperature"].detail.startswith("52.7")
    assert checks5["power"].detail == "pi5-pmic: available"
    # the Pi 4's firmware reports under-voltage now: doctor fails that check and says what to do
    assert not checks4["throttling"].ok and "under-voltage" in checks4["throttling"].detail
    assert "supply" in (checks4["throttling"].fix or "")
    assert info.kind == "ssh" and info.arch == "aarch64" and info.python and info.python.startswith("3.11")
    assert info.runtimes == {"ai_edge_litert": "2.3.0"} and info.numpy and info.numpy.startswith("2.")
    assert info.temperatures_c["vcgencmd"] == pytest.approx(52.7)
    assert info.extra["throttled"].startswith("ok")


def test_pi5_pmic_energy_over_ssh(pi_entry) -> None:
    with SshTarget.from_entry("pi5", pi_entry("edgekd-pi5", profile="rpi5", power="auto"), Path("/")) as target:
        meter = target.energy()
        assert meter is not None and meter.available() is None
        assert isinstance(getattr(meter, "chosen", meter), Pi5PmicMeter)  # the rpi5 profile's first method
        meter.start()
        target.run(["sleep", "0.5"], timeout=30)  # sampling shares the connection with a running command
        idle_window = meter.stop()
        meter.start()
        target.run(["sh", "-c", "sleep 1", "edgekd_runner"], timeout=30)  # looks like a runner: "load" replayed
        busy_window = meter.stop()
    idle = parse_pmic_adc((RECORDINGS / "pi5_pmic_read_adc_idle.txt").read_text()).watts
    busy = parse_pmic_adc((RECORDINGS / "pi5_pmic_read_adc_load.txt").read_text()).watts
    assert idle_window.samples >= 3 and idle_window.watts == pytest.approx(idle)
    assert busy_window.samples >= 3 and idle < busy_window.watts <= busy * (1 + 1e-9)  # load, bar the first sample
    assert idle_window.coverage == "SoC rails" and any("EXT5V" in note for note in idle_window.notes)


@pytest.mark.slow
def test_bench_with_pi5_pmic_energy(pi_entry, pi_models: dict[str, Path]) -> None:
    """The stand-in PMIC reads "load" while a runner runs and "idle" otherwise: idle power is exact."""
    from edgekd.bench.orchestrate import bench_artifacts

    target = SshTarget.from_entry("pi5", pi_entry("edgekd-pi5", profile="rpi5", power="auto"), Path("/"))
    config = BenchConfig(runs=5, warmup=1, energy=True, energy_idle_s=0.9, governor=None)
    [result] = bench_artifacts(target, [describe_file(pi_models["fp32"])], config)
    assert result.energy_unavailable is None and result.energy is not None
    idle = parse_pmic_adc((RECORDINGS / "pi5_pmic_read_adc_idle.txt").read_text()).watts
    assert result.energy["method"] == "pi5-pmic" and result.energy["coverage"] == "SoC rails"
    assert result.energy["idle_w"] == pytest.approx(idle)
    assert result.energy["runs"] == 5 and any("EXT5V" in note for note in result.energy["notes"])


@pytest.mark.slow
def test_bench_orchestration_on_the_older_pi_image(pi_entry, pi_models: dict[str, Path]) -> None:
    """tflite-runtime + numpy < 2, two artifacts interleaved in one call (the Pi 5 flavour runs in the CLI test)."""
    from edgekd.bench.orchestrate import bench_artifacts

    artifacts = [describe_file(pi_models["fp32"]), describe_file(pi_models["int8"])]
    config = BenchConfig(runs=5, warmup=1, energy=False, governor=None)
    target = SshTarget.from_entry("pi4", pi_entry("edgekd-pi4", profile="rpi4"), Path("/"))
    results = bench_artifacts(target, artifacts, config)
    assert [r.artifact for r in results] == [a.name for a in artifacts]
    assert all(r.runtime == "tflite" and len(r.latencies_ns) == 5 and r.target == "pi4" for r in results)
    assert results[0].versions["numpy"].startswith("1.")
    assert target.workdir is None  # cleaned up


@pytest.mark.slow
def test_fleet_keeps_results_when_one_pi_drops(
    pi_sshd: LoopbackSshd, fault_sshd: LoopbackSshd, ssh_keys, pi_models: dict[str, Path], tmp_path: Path
) -> None:
    artifacts = [describe_file(pi_models["fp32"]), describe_file(pi_models["int8"])]
    config = BenchConfig(runs=3, warmup=1, energy=False, governor=None)
    steady_entry = make_entry(pi_sshd, ssh_keys["client"], tmp_path, "edgekd-pi5")
    flaky_entry = make_entry(fault_sshd, ssh_keys["client"], tmp_path, "edgekd-pi4", retries=0, connect_timeout=3)
    steady = SshTarget.from_entry("steady", steady_entry, Path("/"))
    flaky = SshTarget.from_entry("flaky", flaky_entry, Path("/"))
    arrived: list[tuple[str, str]] = []

    def on_result(name: str, result) -> None:
        arrived.append((name, result.artifact))
        if name == "flaky":
            fault_sshd.kill()  # the Pi's sshd dies after its first result: the second artifact cannot run

    outcome = bench_fleet([steady, flaky], artifacts, config, on_result=on_result)
    assert [r.artifact for r in outcome.results["steady"]] == [a.name for a in artifacts]
    assert [r.artifact for r in outcome.results["flaky"]] == [artifacts[0].name]  # kept from before the drop
    assert set(outcome.errors) == {"flaky"} and "flaky" in str(outcome.errors["flaky"])
    assert type(outcome.errors["flaky"]).__name__ == "TargetError"
    assert outcome.summary()["steady"] == {"results": 2, "error": None}

    restarted = LoopbackSshd(fault_sshd.state_dir, fault_sshd.host_key, port=fault_sshd.port).start()
    try:
        rerun = bench_fleet([SshTarget.from_entry("flaky", flaky_entry, Path("/"))], artifacts[1:], config)
    finally:
        restarted.stop()
    assert rerun.ok and [r.artifact for r in rerun.results["flaky"]] == [artifacts[1].name]


@pytest.mark.slow
def test_cli_bench_on_loopback_pi_matches_local_format(pi_entry, pi_models: dict[str, Path], tmp_path: Path) -> None:
    entry = pi_entry("edgekd-pi5", profile="rpi5")
    lines = ["[targets.pi5]", 'kind = "ssh"'] + [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    inventory = tmp_path / "targets.toml"
    inventory.write_text("\n".join(lines) + "\n")

    def bench(target: str) -> dict:
        argv = [
            str(Path(sys.executable).parent / "edgekd"),
            "bench",
            str(pi_models["fp32"]),
            "--target",
            target,
            "--inventory",
            str(inventory),
            "--runs",
            "10",
            "--warmup",
            "2",
            "--no-energy",
            "--no-history",
            "--json",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=dict(os.environ), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    on_pi, local = bench("pi5"), bench("local")
    assert on_pi.keys() == local.keys() and on_pi["schema"] == local["schema"] == "edgekd.bench/1"
    [pi_row], [local_row] = on_pi["results"], local["results"]
    assert pi_row.keys() == local_row.keys()
    assert pi_row["env"].keys() >= local_row["env"].keys() - {"rapl", "perf"}
    assert pi_row["target"] == "pi5" and pi_row["env"]["kind"] == "ssh" and pi_row["env"]["arch"] == "aarch64"
    assert len(pi_row["latencies_ns"]) == 10 and pi_row["artifact_sha256"] == local_row["artifact_sha256"]
