"""Sweep throughput: wall time of one digits sweep with 1 vs 2 worker processes, and the teacher trained once.

Each configuration runs a fresh sweep (its own directory and SQLite study) of N trials (16; 6 with --quick)
over student width/depth and the KD temperature, pruning off so both runs do the same work. Rows: workers,
wall seconds, trials finished (failed ones included: a failed int8 parity gate fails its trial), failed,
teacher trainings (the shared run's one, plus any trial whose teacher stage was not a cache hit: 0 expected),
stage-cache hits of the shared stages (data, teacher, calibrate) summed over trials, trials with all three
hits, and the failed trials' messages. The 1-vs-2 ratio
is in the notes; on a 2-core host busy with other work it is bounded well below 2.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

RECIPE = """
[run]
name = "bench-sweep"
[data]
source = "digits"
[teacher]
model = {{ arch = "cnn", width = 16, depth = 3 }}
train = {{ epochs = 8, lr = 3e-3 }}
[student]
model = {{ arch = "cnn", width = 4, depth = 2 }}
[distill]
train = {{ epochs = 4 }}
baseline = false
[tflite]
enabled = false
[handoff]
enabled = false
[bench]
targets = ["local"]
warmup = 5
runs = 50
energy = false
governor = ""
[report]
history = false
html = false
markdown = false
[sweep]
n_trials = {n_trials}
out = "sweep"
objectives = [{{ metric = "accuracy", artifact = "onnx_int8" }},
              {{ metric = "p50_ms", artifact = "onnx_int8", target = "local" }}]
pruning = {{ kind = "none" }}
[sweep.space]
"student.model.width" = {{ choices = [2, 4, 8, 16] }}
"student.model.depth" = {{ choices = [1, 2, 3] }}
"distill.losses.0.temperature" = {{ low = 1.0, high = 8.0, log = true }}
"""


def one_sweep(workers: int, n_trials: int) -> dict[str, Any]:
    from edgekd.fileio import read_json
    from edgekd.sweep.runner import run_sweep

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["EDGEKD_HISTORY"] = str(tmp / "history.sqlite")
        recipe = tmp / "sweep.toml"
        recipe.write_text(RECIPE.format(n_trials=n_trials), encoding="utf-8")
        started = time.perf_counter()
        sweep_dir = run_sweep(recipe, workers=workers)
        seconds = time.perf_counter() - started
        results = read_json(sweep_dir / "report.json")
    done = [t for t in results["trials"] if t["state"] in ("COMPLETE", "PRUNED") or t.get("error")]
    hits = [set(t.get("cache_hits") or []) for t in done]
    return {
        "workers": workers,
        "wall_s": round(seconds, 1),
        "trials": len(done),
        "failed": sum(1 for t in done if t["state"] == "FAIL"),
        "teacher_trainings": 1 + sum(1 for h in hits if "teacher" not in h),
        "shared_stage_cache_hits": sum(len(h) for h in hits),
        "trials_all_shared_cached": sum(1 for h in hits if h >= {"data", "teacher", "calibrate"}),
        "errors": "; ".join(
            f"trial {t['number']}: {' '.join(t['error']['message'].split())[:90]}" for t in done if t.get("error")
        )
        or None,
    }  # one line: a table cell


def run(quick: bool = False) -> dict[str, Any]:
    n_trials = 6 if quick else 16
    load = os.getloadavg()[0]  # the host is shared: other work competes with the 2-worker run
    rows = [one_sweep(1, n_trials), one_sweep(2, n_trials)]
    ratio = rows[0]["wall_s"] / rows[1]["wall_s"]
    return {
        "rows": rows,
        "notes": f"{n_trials}-trial digits sweep: 1 worker / 2 workers wall time = {ratio:.2f}x "
        f"on {os.cpu_count()} cores shared with other work (load average before the run: "
        f"{load:.1f}); teacher trained {rows[0]['teacher_trainings']} / "
        f"{rows[1]['teacher_trainings']} time(s) per sweep (the shared run; a trial that found it in the stage "
        f"cache is not counted); trials with data, teacher and calibrate all cache hits: "
        f"{rows[0]['trials_all_shared_cached']} / {rows[1]['trials_all_shared_cached']} of {n_trials}. "
        "A failed trial (errors column: e.g. a student's int8 parity gate) counts towards the trials.",
    }
