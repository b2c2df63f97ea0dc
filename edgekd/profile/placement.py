"""Placement: which provider ran which nodes, and the verdict when an asked-for accelerator was not used.

A profile's `requested` lists what the user asked for (ORT execution providers, TFLite delegates); each row's
`provider` says where the node really ran. Anything on the plain CPU (ORT's CPUExecutionProvider, TFLite's
builtin kernels) while an accelerator was requested is a fallback: whole (nothing delegated, e.g. an EP this
onnxruntime build lacks) or partial (ops the delegate cannot take).
"""

from __future__ import annotations

from typing import Any

from edgekd.profile.schema import PLAIN_CPU, OpProfile
from edgekd.verdicts import INFO, WARNING, Verdict

CODE = "accelerator_fallback"
#: A partial fallback is a warning when the plain CPU takes at least this share of the op time
#: (0.10 = 10 %); below it the verdict is "info" (e.g. one QUANTIZE at the input of an XNNPACK model).
FALLBACK_WARN_SHARE = 0.10
#: How many CPU op types a message names.
NAMED_OP_TYPES = 4


def placement(profile: OpProfile) -> list[dict[str, Any]]:
    """Per provider: nodes, ms per inference and share of the op time, most time first."""
    groups: dict[str, dict[str, Any]] = {}
    for row in profile.rows:
        group = groups.setdefault(row.provider, {"provider": row.provider, "nodes": 0, "ms": 0.0, "op_types": []})
        group["nodes"] += 1
        group["ms"] += row.ms
        if row.op_type not in group["op_types"]:
            group["op_types"].append(row.op_type)
    total = profile.total_ms or 1.0
    return [{**g, "share": g["ms"] / total} for g in sorted(groups.values(), key=lambda g: g["ms"], reverse=True)]


def requested_accelerators(profile: OpProfile) -> list[str]:
    """The requested providers that are not the plain CPU."""
    return [name for name in profile.requested if name not in PLAIN_CPU]


def accelerator_fallback(profile: OpProfile) -> list[Verdict]:
    """One verdict when an accelerator was requested and some or all nodes ran on the plain CPU."""
    accelerators = requested_accelerators(profile)
    if not accelerators or not profile.rows:
        return []
    cpu = [row for row in profile.rows if row.provider in PLAIN_CPU]
    if not cpu:
        return []
    total = profile.total_ms
    cpu_ms = sum(row.ms for row in cpu)
    share = cpu_ms / total if total > 0 else len(cpu) / len(profile.rows)
    wholly = len(cpu) == len(profile.rows)
    by_type: dict[str, float] = {}
    for row in cpu:
        by_type[row.op_type] = by_type.get(row.op_type, 0.0) + row.ms
    named = sorted(by_type.items(), key=lambda item: item[1], reverse=True)[:NAMED_OP_TYPES]
    where = f" on {profile.target}" if profile.target else ""
    missing = [
        name
        for name in accelerators
        if profile.providers and name not in profile.providers and profile.runtime == "ort"
    ]
    reason = f" ({', '.join(missing)} not available to the session)" if missing else ""
    extent = "all" if wholly else f"{len(cpu)} of {len(profile.rows)}"
    message = (
        f"{profile.model} asked for {', '.join(accelerators)}{where}, but {extent} nodes "
        f"({share * 100:.1f}% of op time, {cpu_ms:.3f} ms per inference) ran on the plain CPU{reason}: "
        + ", ".join(f"{op_type} {ms:.3f} ms" for op_type, ms in named)
        + (", …" if len(by_type) > NAMED_OP_TYPES else "")
        + "."
    )
    severity = WARNING if wholly or share >= FALLBACK_WARN_SHARE else INFO
    return [Verdict(CODE, message, severity)]


def delegation_fallback(entries: list[dict[str, Any]], model: str, *, target: str | None = None) -> list[Verdict]:
    """The fallback verdict from TFLite's delegation log lines (`tflite_benchmark.delegation_in_log`), for runs
    without an op profile: fires when a delegate took fewer nodes than the graph has. Without per-op times the
    share is of nodes: a warning when FALLBACK_WARN_SHARE or more of them stayed on the CPU."""
    verdicts = []
    where = f" on {target}" if target else ""
    for entry in entries:
        total, replaced = entry.get("total"), int(entry["replaced"])
        if not total or replaced >= total:
            continue
        left = total - replaced
        partitions = f", in {entry['partitions']} partitions" if entry.get("partitions") else ""
        severity = WARNING if left / total >= FALLBACK_WARN_SHARE else INFO
        verdicts.append(
            Verdict(
                CODE,
                f"{model}{where}: {entry['provider']} took {replaced} of {total} nodes"
                f"{partitions}; {left} ran on the plain CPU (per the delegate's log).",
                severity,
            )
        )
    return verdicts


def report_fallbacks(report: dict[str, Any]) -> list[Verdict]:
    """`accelerator_fallback` over report.json's per-op profiles (`report["profiles"]`: OpProfile dicts),
    in the shape of edgekd.verdicts' checks so it can join `CHECKS`."""
    verdicts: list[Verdict] = []
    for data in report.get("profiles") or []:
        if isinstance(data, dict) and data.get("rows"):
            verdicts += accelerator_fallback(OpProfile.from_dict(data))
    return verdicts
