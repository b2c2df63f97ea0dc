"""The environment attached to every result: device, CPU, frequency, governor, temperatures, affinity,
versions and the model's sha256, merged from the target's DeviceInfo and the runner's own report."""

from __future__ import annotations

import platform
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.target_protocol import Completed, DeviceInfo


def result_environment(
    info: DeviceInfo, runner_doc: dict[str, Any], artifact: Artifact, completed: Completed
) -> dict[str, Any]:
    """One flat-ish dict. The runner's view (taken on the device, right after the timed loop) wins over
    DeviceInfo (taken before) for values both have, such as governor and temperatures. DeviceInfo.extra is
    kept whole under `device_details`, its thermal status, SDK, big-core mask, throttling and charging
    state also lifted to the top level."""
    from edgekd import __version__

    runner_env = runner_doc.get("env", {})
    extra = dict(info.extra)
    env = {
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
        # What the target knows about itself (adb: SDK, big-core mask, battery; ssh: Pi profile, throttling).
        "device_details": extra,
        "thermal_status_before": extra.get("thermal_status"),
        "thermal_status_after": runner_env.get("thermal_status"),
        "sdk": extra.get("sdk"),
        "big_core_mask": extra.get("big_core_mask"),
        "throttled": extra.get("throttled"),
        "charging": bool(extra["on_power"]) if "on_power" in extra else None,  # adb: on USB/AC/wireless power
    }
    return env
