"""Host-side runner for torch artifacts: the device runner's measurement with a torch backend.

Devices have no torch and the device runner never imports edgekd, so torch artifacts (state dict +
sidecar) are benchmarked on the local target only, by `python -m edgekd.bench.torch_runner`, which
takes the device runner's options and prints the same edgekd.run/1 document.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any


def _runner() -> Any:
    from edgekd.targets.runner import edgekd_runner

    return edgekd_runner


class TorchSession:
    """Eager torch on CPU, gradients off; one float32 input of the artifact's (1, C, H, W) shape."""

    xnnpack = False
    xnnpack_note = "torch eager on CPU: XNNPACK does not apply"

    def __init__(self, model: str, threads: int) -> None:
        import torch

        from edgekd.artifacts import load_artifact
        from edgekd.distill.models import load_torch_model
        from edgekd.errors import EdgekdError

        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)  # this process only measures
        try:
            artifact = load_artifact(model)
            self.module = load_torch_model(artifact)
        except EdgekdError as exc:
            raise _runner().RunnerError("model_invalid", exc.message, exc.hint) from None
        self.input_shape = [1, *artifact.config["input_shape"]]
        self.result: Any = None
        self.invoke: Callable[[], None] = lambda: None

    def inputs(self) -> list[dict[str, Any]]:
        return [{"name": "input", "shape": self.input_shape, "dtype": "float32", "quant": None}]

    def set_inputs(self, arrays: Sequence[Any]) -> None:
        import torch

        x = torch.from_numpy(arrays[0])
        module = self.module

        def invoke() -> None:
            self.result = module(x)

        self.invoke = invoke

    def outputs(self) -> list[tuple[str, Any]]:
        return [("output", self.result.numpy())]

    def profile(self, warmup: int, runs: int) -> dict[str, Any]:
        """The runner's --profile for torch: torch.profiler (CPU) over `runs` calls after `warmup`, one row per
        op name with its self time (so rows add up to the whole call, without counting a caller and its callees
        twice). torch.profiler aggregates by op name, not per graph node: `calls` says how often per inference."""
        import time

        from torch.profiler import ProfilerActivity, profile

        for _ in range(warmup):
            self.invoke()
        latencies = []
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                start = time.perf_counter_ns()
                self.invoke()
                latencies.append(time.perf_counter_ns() - start)
        rows = [
            {
                "op": event.key,
                "op_type": event.key.split("::")[-1],
                "provider": "CPU",
                "ms": event.self_cpu_time_total / runs / 1000.0,
                "calls": event.count / runs,
            }
            for event in prof.key_averages()
            if event.self_cpu_time_total > 0
        ]
        rows.sort(key=lambda row: row["ms"], reverse=True)
        import torch

        return {
            "op_profile": {"rows": rows, "runs": runs, "statistic": "mean"},
            "profile_latencies_ns": latencies,
            "requested_providers": [],
            "providers": ["CPU"],
            "profile_source": f"torch {torch.__version__} profiler (rows per op name, self time)",
        }


class TorchBackend:
    """What the device runner's open_session() hook expects from a host-supplied backend."""

    @staticmethod
    def open_session(model: str, threads: int, xnnpack: bool) -> TorchSession:
        return TorchSession(model, threads)


def resolve_torch(name: str, model: str) -> tuple[str, type[TorchBackend], str]:
    try:
        import torch
    except ImportError:
        raise _runner().RunnerError("runtime_missing", "torch is not installed", "pip install torch==2.13.0") from None
    return "torch", TorchBackend, torch.__version__


def main(argv: list[str] | None = None) -> int:
    return int(_runner().main(argv, resolve_runtime=resolve_torch))


if __name__ == "__main__":
    sys.exit(main())
