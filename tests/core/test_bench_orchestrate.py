"""bench_artifacts on the real LocalTarget: order, results, memory baseline, energy, failures and cleanup."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from edgekd.artifacts import Artifact, create_artifact
from edgekd.bench.noise import GovernorControl
from edgekd.bench.orchestrate import bench_artifacts
from edgekd.config.bench import BenchConfig
from edgekd.energy_protocol import EnergyWindow
from edgekd.errors import BenchError, TargetError
from edgekd.target_protocol import Completed, DeviceInfo
from edgekd.targets.local import LocalTarget

REPO = Path(__file__).resolve().parents[2]
from tests.support.bench_models import make_matmul_onnx

SUMMARY_KEYS = {
    "artifact",
    "target",
    "runtime",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "iqr_ms",
    "mad_ms",
    "ci95_median_ms",
    "peak_rss_kb",
    "model_rss_kb",
    "init_ms",
    "first_ms",
    "runs",
    "energy_j_per_inference",
    "energy_unavailable",
    "warnings",
    "env",
    "windows",
}
FAST = {"runs": 30, "warmup": 2, "energy_idle_s": 0.3}


class RecordingTarget(LocalTarget):
    """LocalTarget that remembers which model each runner invocation ran and whether cleanup happened."""

    def __init__(self, tmp: Path, **kwargs: Any) -> None:
        super().__init__(workdir_parent=tmp / "work", sysfs=tmp / "sys", **kwargs)
        self.models: list[str] = []
        self.cleanups = 0
        self.fail_on_run: BaseException | None = None

    def run(self, argv: Sequence[str], timeout: float) -> Completed:
        if self.fail_on_run is not None and "--model" in argv:
            raise self.fail_on_run
        if "--model" in argv and "--runs" in argv and argv[argv.index("--runs") + 1] != "0":
            self.models.append(Path(argv[argv.index("--model") + 1]).name.split("-", 1)[-1])
        return super().run(argv, timeout)

    def cleanup(self) -> None:
        self.cleanups += 1
        super().cleanup()


def onnx_artifact(folder: Path, name: str, layers: int, size: int = 64) -> Artifact:
    path = make_matmul_onnx(folder / f"{name}.onnx", layers=layers, size=size)
    return create_artifact(path, name=name, format="onnx", precision="fp32", producer="test")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    folder = tmp_path_factory.mktemp("models")
    return {"fast": onnx_artifact(folder, "fast", 1), "slow": onnx_artifact(folder, "slow", 12, 256)}


@pytest.mark.parametrize(
    ("interleave", "order"), [(True, ["fast", "slow", "fast", "slow"]), (False, ["fast", "fast", "slow", "slow"])]
)
def test_run_order_and_results(models: dict[str, Artifact], tmp_path: Path, interleave: bool, order: list[str]) -> None:
    target = RecordingTarget(tmp_path)
    config = BenchConfig(repeats=2, interleave=interleave, **FAST)
    progress: list[tuple[int, int, str]] = []
    results = bench_artifacts(target, [models["fast"], models["slow"]], config, progress=lambda *a: progress.append(a))
    assert [m.removesuffix(".onnx") for m in target.models] == order
    assert [r.artifact for r in results] == ["fast", "slow"] and target.cleanups == 1
    assert [p[0] for p in progress] == [1, 2, 3, 4]
    for result in results:
        summary = result.summary()
        assert SUMMARY_KEYS <= set(summary)
        assert summary["runs"] == 60 and len(result.repeat_medians_ms) == 2 and summary["runtime"] == "ort"
        assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"]
        assert summary["model_rss_kb"] == summary["peak_rss_kb"] - summary["baseline_rss_kb"] >= 0
        assert summary["energy_j_per_inference"] is None and "rapl:" in summary["energy_unavailable"]
        assert summary["env"]["model_sha256"] == result.artifact_sha256
        assert summary["env"]["cpu_model"] and summary["env"]["runtime_version"]
        assert len(result.to_dict()["latencies_ns"]) == 60


def test_sustained_windows_and_pinning(models: dict[str, Artifact], tmp_path: Path) -> None:
    config = BenchConfig(sustained_windows=3, pin_cores=[0], **FAST)
    (result,) = bench_artifacts(RecordingTarget(tmp_path), [models["fast"]], config)
    assert [w["runs"] for w in result.windows or []] == [10, 10, 10]
    assert result.env["affinity"] == [0]


class ConstantPowerMeter:
    """A meter reading a steady 5 W: everything is idle, so energy above idle is ~0 and total is 5 W x time."""

    name = "constant"

    def available(self) -> str | None:
        return None

    def start(self) -> None:
        self.t0 = time.monotonic()

    def stop(self) -> EnergyWindow:
        seconds = time.monotonic() - self.t0
        return EnergyWindow(joules=5.0 * seconds, seconds=seconds, samples=2, method="constant", coverage="test")

    def close(self) -> None:
        pass


def test_energy_with_idle_baseline_and_reference_run(models: dict[str, Artifact], tmp_path: Path) -> None:
    target = RecordingTarget(tmp_path, energy_meters=[ConstantPowerMeter()])
    (result,) = bench_artifacts(target, [models["fast"]], BenchConfig(**FAST))
    assert result.energy_unavailable is None and result.energy is not None
    assert result.energy["method"] == "constant" and result.energy["idle_w"] == pytest.approx(5.0, rel=1e-6)
    # Constant power: the runs cost nothing above idle (up to float error)
    assert abs(result.energy["j_per_inference"]) < 1e-9
    assert result.summary()["energy_j_per_inference"] == result.energy["j_per_inference"]


def test_energy_disabled_says_so(models: dict[str, Artifact], tmp_path: Path) -> None:
    (result,) = bench_artifacts(RecordingTarget(tmp_path), [models["fast"]], BenchConfig(energy=False, **FAST))
    assert "disabled" in (result.energy_unavailable or "")


def test_corrupt_model_is_a_bench_error_and_the_target_is_cleaned(models: dict[str, Artifact], tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(models["fast"].path.read_bytes()[:100])
    artifact = create_artifact(broken, name="broken", format="onnx")
    target = RecordingTarget(tmp_path)
    with pytest.raises(BenchError, match="onnxruntime cannot load"):
        bench_artifacts(target, [artifact], BenchConfig(**FAST))
    assert target.cleanups == 1 and target.workdir is None


def test_ctrl_c_still_cleans_up_and_restores_the_governor(models: dict[str, Artifact], tmp_path: Path) -> None:
    cpu = tmp_path / "sys" / "devices" / "system" / "cpu"
    for core in ("cpu0", "cpu1"):
        (cpu / core / "cpufreq").mkdir(parents=True)
        (cpu / core / "cpufreq" / "scaling_governor").write_text("powersave\n")
    target = RecordingTarget(tmp_path)
    target.fail_on_run = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        bench_artifacts(target, [models["fast"]], BenchConfig(**FAST))
    assert target.cleanups == 1
    assert GovernorControl(cpu).read() == {"cpu0": "powersave", "cpu1": "powersave"}


def test_governor_is_held_during_the_run(models: dict[str, Artifact], tmp_path: Path) -> None:
    cpu = tmp_path / "sys" / "devices" / "system" / "cpu"
    (cpu / "cpu0" / "cpufreq").mkdir(parents=True)
    (cpu / "cpu0" / "cpufreq" / "scaling_governor").write_text("schedutil\n")
    seen: list[str] = []

    class Watching(RecordingTarget):
        def run(self, argv: Sequence[str], timeout: float) -> Completed:
            seen.append((cpu / "cpu0" / "cpufreq" / "scaling_governor").read_text().strip())
            return super().run(argv, timeout)

    (result,) = bench_artifacts(Watching(tmp_path), [models["fast"]], BenchConfig(**FAST))
    assert set(seen) == {"performance"}
    assert (cpu / "cpu0" / "cpufreq" / "scaling_governor").read_text().strip() == "schedutil"
    assert "held at performance" in result.env["governor_control"]


def test_thermal_gate_timeout_becomes_a_warning(models: dict[str, Artifact], tmp_path: Path) -> None:
    class Hot(RecordingTarget):
        def info(self) -> DeviceInfo:
            info = super().info()
            info.temperatures_c = {"cpu-thermal": 91.0}
            return info

    config = BenchConfig(thermal_limit_c=70.0, thermal_timeout_s=0.2, **FAST)
    (result,) = bench_artifacts(Hot(tmp_path), [models["fast"]], config)
    assert any("thermal gate timed out" in w and "91.0" in w for w in result.warnings)


def test_device_without_numpy_is_a_target_error(models: dict[str, Artifact], tmp_path: Path) -> None:
    class Bare(RecordingTarget):
        def python_argv(self) -> list[str]:
            return [sys.executable, "-S", "-I"]  # no site-packages: like a device without numpy

    target = Bare(tmp_path)
    with pytest.raises(TargetError, match="numpy is not installed") as caught:
        bench_artifacts(target, [models["fast"]], BenchConfig(**FAST))
    assert "pip install numpy" in (caught.value.hint or "") and target.cleanups == 1


def torch_artifact(folder: Path) -> Artifact:
    import torch

    from edgekd.distill.models import build_model, save_state_dict

    torch.manual_seed(0)
    spec = {"arch": "cnn", "width": 4, "depth": 1}
    path = folder / "student.pt"
    save_state_dict(build_model(spec, (1, 8, 8), 10), path)
    return create_artifact(
        path,
        name="student_torch",
        format="torch",
        precision="fp32",
        config={"model": spec, "input_shape": [1, 8, 8], "num_classes": 10},
    )


def test_torch_artifacts_run_on_the_local_target(models: dict[str, Artifact], tmp_path: Path) -> None:
    student = torch_artifact(tmp_path)
    results = bench_artifacts(RecordingTarget(tmp_path), [student, models["fast"]], BenchConfig(**FAST))
    assert [(r.artifact, r.runtime) for r in results] == [("student_torch", "torch"), ("fast", "ort")]
    torch_result = results[0]
    assert torch_result.stats.n == 30 and torch_result.versions["runtime"].startswith("2.")
    assert torch_result.model_rss_kb is not None and torch_result.env["model_sha256"] == student.sha256


def test_torch_artifacts_are_skipped_on_devices(
    models: dict[str, Artifact], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Device(RecordingTarget):
        kind = "ssh"

    student = torch_artifact(tmp_path)
    results = bench_artifacts(Device(tmp_path), [student, models["fast"]], BenchConfig(**FAST))
    assert [r.artifact for r in results] == ["fast"] and "local target only" in caplog.text
    with pytest.raises(BenchError, match="torch artifacts run on the local target only"):
        bench_artifacts(Device(tmp_path), [student], BenchConfig(**FAST))


def test_unknown_formats_are_refused_before_touching_the_device(tmp_path: Path) -> None:
    data = tmp_path / "calibration.npz"
    data.write_bytes(b"x")
    target = RecordingTarget(tmp_path)
    with pytest.raises(BenchError, match="format 'npz' has no runtime"):
        bench_artifacts(target, [create_artifact(data, name="calibration", format="npz")], BenchConfig())
    assert target.workdir is None


def test_a_rich_progress_is_advanced(models: dict[str, Artifact], tmp_path: Path) -> None:
    from rich.progress import Progress

    with Progress(disable=True) as bar:
        bench_artifacts(RecordingTarget(tmp_path), [models["fast"]], BenchConfig(repeats=2, **FAST), progress=bar)
        (task,) = bar.tasks
        assert (task.completed, task.total) == (2, 2)


def test_peak_rss_is_the_runners_own_even_from_a_large_host(models: dict[str, Artifact], tmp_path: Path) -> None:
    """Linux carries the parent's RSS high-water mark into a forked child's ru_maxrss; the runner's VmHWM
    is per process image, so a 400 MiB host must not show up in the model's memory."""
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    (result,) = bench_artifacts(RecordingTarget(tmp_path), [models["fast"]], BenchConfig(**FAST))
    del ballast
    assert result.peak_rss_kb is not None and result.peak_rss_kb < 300 * 1024
    assert result.env["rss_sources_kb"]["vmhwm"] == result.peak_rss_kb


def test_inputs_file_is_pushed_and_checked(models: dict[str, Artifact], tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "good.npz", x=np.ones((1, 64), np.float32))
    np.savez(tmp_path / "bad.npz", x=np.ones((1, 65), np.float32))
    (result,) = bench_artifacts(
        RecordingTarget(tmp_path), [models["fast"]], BenchConfig(inputs=str(tmp_path / "good.npz"), **FAST)
    )
    assert result.stats.n == 30
    target = RecordingTarget(tmp_path)
    with pytest.raises(BenchError, match=r"fast.onnx: .*shape \[1, 65\]"):
        bench_artifacts(target, [models["fast"]], BenchConfig(inputs=str(tmp_path / "bad.npz"), **FAST))
    assert target.cleanups == 1
    with pytest.raises(BenchError, match="does not exist"):
        bench_artifacts(RecordingTarget(tmp_path), [models["fast"]], BenchConfig(inputs="/none.npz", **FAST))


def test_a_broken_runtime_on_the_device_is_one_target_error_naming_the_fix() -> None:
    """The runner's runtime_broken document (tflite-runtime under numpy 2) is the device's problem: a
    TargetError with the runner's fix, no traceback and no out-of-memory guess."""
    from edgekd.bench.orchestrate import parse_runner_output

    line = (
        '{"schema": "edgekd.run/1", "error": {"kind": "runtime_broken", "message": "tflite-runtime cannot run '
        'with numpy 2.4.6 on this device (it was built for numpy 1.x): SystemError: x", "hint": '
        '"pip install \\"numpy<2\\" on the device, or pip install ai-edge-litert (built for numpy 2) instead"}}'
    )
    with pytest.raises(TargetError) as caught:
        parse_runner_output(Completed(["python3"], 3, "\n" + line + "\n", "", 1.0), "pi4")
    assert caught.value.message.startswith("pi4: tflite-runtime cannot run with numpy 2.4.6")
    assert 'pip install "numpy<2"' in (caught.value.hint or "")
    with pytest.raises(TargetError) as crashed:  # no document, not killed: no out-of-memory hint
        parse_runner_output(Completed(["python3"], 1, "", "Traceback...\nValueError: x", 1.0), "pi4")
    assert "out of memory" not in (crashed.value.hint or "")
    with pytest.raises(TargetError) as killed:
        parse_runner_output(Completed(["python3"], -9, "", "", 1.0), "pi4")
    assert "ran out of memory" in (killed.value.hint or "")
