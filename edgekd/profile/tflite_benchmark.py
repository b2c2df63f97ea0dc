"""Parse TFLite `benchmark_model --enable_op_profiling=true` output into the per-op schema.

The tool prints (to stdout/stderr, lines sometimes prefixed `INFO: `) a section
`Operator-wise Profiling Info for Regular Benchmark Runs:` holding three tables — `Run Order`,
`Top by Computation Time` and `Summary by node type` — after an initialisation section
(`Profiling Info for Benchmark Initialization:`, ModifyGraphWithDelegate/AllocateTensors), which is not
inference and is skipped. Columns are named in brackets in each table's header row; older builds have a
`[start]` column, newer ones do not, and rows are tab- or space-aligned, so columns are found by name.
`[avg ms]` is the mean per call and `[times called]` the calls per run, so a row's per-inference time is
their product (the `[%]` column agrees).

Placement: a delegate that reports no per-op detail shows up as one row per delegated partition whose node
type is the delegate kernel (`TfLiteXNNPackDelegate`, `TfLiteNnapiDelegate`, `TfLiteGpuDelegateV2`,
`DELEGATE`); XNNPACK (TF ≥ 2.9) reports each of its operators as `Delegate/<operator>:<n>`; every other
row (`CONV_2D`, `QUANTIZE`...) ran on TFLite's plain CPU kernels.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgekd.errors import DataError
from edgekd.profile.schema import TFLITE_CPU, OpProfile, OpRow

RUN_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs"
RUN_ORDER = "Run Order"
#: Delegate kernels' node types -> provider name.
DELEGATE_KERNELS = {
    "tflitexnnpackdelegate": "XNNPACK",
    "tflitennapidelegate": "NNAPI",
    "tflitegpudelegate": "GPU",
    "tflitegpudelegatev2": "GPU",
    "tflitehexagondelegate": "Hexagon",
    "tflitecoremldelegate": "CoreML",
    "tfliteqnndelegate": "QNN",
}
#: Lines of the tool's log that name the delegate it applied -> provider name.
DELEGATE_LOG = (
    (re.compile(r"XNNPACK delegate", re.IGNORECASE), "XNNPACK"),
    (re.compile(r"NNAPI delegate|delegate for NNAPI", re.IGNORECASE), "NNAPI"),
    (re.compile(r"GPU delegate|delegate for GPU", re.IGNORECASE), "GPU"),
    (re.compile(r"Hexagon delegate|delegate for Hexagon", re.IGNORECASE), "Hexagon"),
)
_HEADER = re.compile(r"\[([^\]]+)\]")
#: TFLite's delegation log lines, e.g. "Replacing 29 out of 31 node(s) with delegate (TfLiteXNNPackDelegate) node,
#: yielding 4 partitions for the whole graph." (older builds omit "out of N"; some say "sets 1 partition(s)").
_REPLACING = re.compile(
    r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \((\w+)\) node"
    r"(?:, (?:yielding|sets) (\d+) partition)?"
)
#: "TfLiteQnnDelegate delegate: 11 nodes delegated out of 3504 nodes with 7 partitions."
_DELEGATED = re.compile(r"(\w+) delegate: (\d+) nodes delegated out of (\d+) nodes(?: with (\d+) partitions)?")


def delegates_in_log(text: str) -> list[str]:
    """Delegates the tool says it created or applied, in the order found."""
    found: list[str] = []
    for line in text.splitlines():
        for pattern, name in DELEGATE_LOG:
            if pattern.search(line) and name not in found:
                found.append(name)
    return found


def delegation_in_log(text: str) -> list[dict[str, object]]:
    """Each delegation line of a TFLite log: delegate kernel, provider, nodes replaced, nodes in the graph
    (None when the line does not say) and partitions. Works without --enable_op_profiling."""
    entries: list[dict[str, object]] = []
    for line in text.splitlines():
        match = _REPLACING.search(line)
        if match:
            replaced, total, kernel, partitions = match.groups()
        else:
            found = _DELEGATED.search(line)
            if not found:
                continue
            kernel, replaced, total, partitions = found.groups()
        entries.append(
            {
                "delegate": kernel,
                "provider": DELEGATE_KERNELS.get(kernel.lower(), kernel),
                "replaced": int(replaced),
                "total": int(total) if total else None,
                "partitions": int(partitions) if partitions else None,
            }
        )
    return entries


def _run_order_lines(text: str) -> tuple[list[str], list[str]]:
    """The header columns and the row lines of the regular runs' `Run Order` table."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if RUN_SECTION in line), None)
    if start is None:
        raise DataError(
            f"no '{RUN_SECTION}' section in the benchmark_model output",
            hint="run benchmark_model with --enable_op_profiling=true and keep its whole output",
        )
    order = next((i for i in range(start + 1, len(lines)) if RUN_ORDER in lines[i] and "====" in lines[i]), None)
    if order is None or order + 1 >= len(lines):
        raise DataError(
            "the benchmark_model op profile has no 'Run Order' table",
            hint="keep the whole output of benchmark_model --enable_op_profiling=true",
        )
    columns = [name.strip().lower() for name in _HEADER.findall(lines[order + 1])]
    rows = []
    for line in lines[order + 2 :]:
        if not line.strip() or "====" in line:
            break
        rows.append(line)
    return columns, rows


def _cells(line: str, count: int) -> list[str]:
    """Split one table row into `count` cells (tabs in older builds, runs of spaces in newer ones)."""
    parts = [p.strip() for p in (line.split("\t") if "\t" in line else re.split(r"\s{2,}", line))]
    parts = [p for p in parts if p]
    if len(parts) != count:
        raise DataError(
            f"benchmark_model op-profile row has {len(parts)} cells, the header names {count}: {line.strip()!r}",
            hint="pass the tool's output unmodified",
        )
    return parts


def _provider(node_type: str, name: str, log_delegates: list[str]) -> str:
    kernel = DELEGATE_KERNELS.get(node_type.lower())
    if kernel:
        return kernel
    if re.fullmatch(r"TfLite\w*Delegate\w*", node_type):
        return node_type  # a delegate kernel this table does not name yet: still not the plain CPU
    if node_type.upper() == "DELEGATE" or name.startswith("Delegate/"):
        return log_delegates[0] if len(log_delegates) == 1 else "delegate"
    return TFLITE_CPU


def _profiled_runs(text: str) -> int:
    """Runs the op profile averages: the regular section's `Timings (microseconds): count=N`, else the last
    `count=N first=` line of the benchmark before it; 0 when the excerpt shows neither."""
    before, _, after = text.partition(RUN_SECTION)
    timings = re.search(r"Timings \(microseconds\): count=(\d+)", after)
    if timings:
        return int(timings.group(1))
    counts = re.findall(r"count=(\d+) first=", before)
    return int(counts[-1]) if counts else 0


def parse_benchmark_output(
    text: str, *, model: str = "?", runtime: str = "tflite", requested: list[str] | None = None
) -> OpProfile:
    """The per-op profile in `text` (benchmark_model's output). `requested`: delegates asked for; by
    default the delegates the log says were created."""
    columns, lines = _run_order_lines(text)
    need = {"node type", "avg ms", "times called", "name"}
    if not need <= set(columns):
        raise DataError(
            f"benchmark_model 'Run Order' header lacks {sorted(need - set(columns))}: {columns}",
            hint="pass the tool's output unmodified",
        )
    log_delegates = delegates_in_log(text)
    rows = []
    for line in lines:
        cells = dict(zip(columns, _cells(line, len(columns))))
        calls = float(cells["times called"])
        node_type, name = cells["node type"], cells["name"]
        rows.append(
            OpRow(
                op=name,
                op_type=node_type,
                provider=_provider(node_type, name, log_delegates),
                ms=float(cells["avg ms"]) * calls,
                calls=calls,
            )
        )
    return OpProfile(
        runtime=runtime,
        model=model,
        source="benchmark_model --enable_op_profiling",
        rows=rows,
        runs=_profiled_runs(text),
        statistic="mean",
        requested=list(requested if requested is not None else log_delegates),
        providers=log_delegates,
    )


def parse_benchmark_file(path: str | Path, **kwargs: object) -> OpProfile:
    """`parse_benchmark_output` of a saved output file."""
    file = Path(path)
    try:
        text = file.read_text(errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read benchmark_model output {file}: {exc.strerror}") from None
    return parse_benchmark_output(text, **kwargs)  # type: ignore[arg-type]


def summary_by_node_type(text: str) -> dict[str, float]:
    """The regular runs' `Summary by node type` table as {node type: ms per inference} (the tool's own
    aggregate, used to cross-check the per-node rows)."""
    _, _, after = text.partition(RUN_SECTION)
    lines = after.splitlines()
    start = next((i for i, line in enumerate(lines) if "Summary by node type" in line), None)
    if start is None or start + 1 >= len(lines):
        return {}
    columns = [name.strip().lower() for name in _HEADER.findall(lines[start + 1])]
    summary = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = dict(zip(columns, _cells(line, len(columns))))
        summary[cells["node type"]] = float(cells["avg ms"])
    return summary
