"""The environment attached to every result: device, CPU, frequency, governor, temperatures, affinity,
versions and the model's sha256, merged from the target's DeviceInfo and the runner's own report."""

from __future__ import annotations

import platform
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.device import Completed, DeviceInfo


def result_environment(
    info: DeviceInfo, runner_doc: dict[str, Any], artifact: Artifact, completed: Completed
) -> dict[str, Any]:
    """One flat-ish dict. The runner's view (taken on the device, right after the timed loop) wins over
    DeviceInfo (taken before) for values both have, such as governor and temperatures."""
    from edgekd import __version__

    runner_env = runner_doc.get("env", {})
    return {
        "device": info.name,
        "kind": info.kind,
        "arch": runner_env.get("machine") or info.arch,
        "cpu_model": runner_env.get("cpu_model") or info.cpu_model,
        "cores": runner_env.get("cpu_count") or info.cores,
        "affinity": runner_env.get("affinity"),
        "freq_khz": runner_env.get("freq_khz", {}),
        "governor": runner_env.get("governor") or info.governor,
        "temps_c_before": dict(info.temperatures_c),
        "temps_c_after": runner_env.get("temps_c", {}),
        "loadavg": runner_env.get("loadavg"),
        "os": f"{runner_env.get('system', '')} {runner_env.get('release', '')}".strip() or None,
        "python": runner_env.get("python") or info.python,
        "numpy": runner_doc.get("versions", {}).get("numpy") or info.numpy,
        "runtime": runner_doc.get("runtime"),
        "runtime_version": runner_doc.get("versions", {}).get("runtime"),
        "threads": runner_doc.get("threads"),
        "xnnpack": runner_doc.get("xnnpack"),
        "model_sha256": runner_doc.get("model_sha256") or artifact.sha256,
        "runner_notes": runner_doc.get("notes", []),
        "wall_s": round(completed.seconds, 3),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "edgekd": __version__},
    }
