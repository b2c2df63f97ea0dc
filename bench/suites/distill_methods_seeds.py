"""The candidates for the demo's default, with 8 seeds: does DIST or consistent-view KD beat scratch on digits?

The 3-seed `distill_methods` suite leaves wide intervals at 100 % labels; here the two best there (DIST,
consistent-view KD with mixup) and their combination get 8 seeds (same protocol: bench/suites/distill_methods.py).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

METHODS: dict[str, dict[str, Any]] = {
    "dist": {"losses": [{"kind": "dist"}]},
    "consistent-view KD (mixup 1.0)": {"losses": [{"kind": "hinton"}], "augment": {"consistent": True, "mixup": 1.0}},
    "dist + consistent-view (mixup 1.0)": {"losses": [{"kind": "dist"}], "augment": {"consistent": True, "mixup": 1.0}},
}


def _protocol() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_distill_methods", Path(__file__).with_name("distill_methods.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    protocol = _protocol()
    protocol.METHODS = METHODS
    seeds = list(range(3 if quick else 8))
    rows = protocol.compare(seeds, [1.0], epochs=10 if quick else None)
    lines = []
    for labels in ("100%", "10% of B, teacher on A"):
        for row in (r for r in rows if r["labels"] == labels and "minus_scratch_pt" in r):
            state = "excludes zero" if row["excludes_zero"] else "includes zero"
            lines.append(f"{labels}: {row['method']} {row['minus_scratch_pt']:+.2f} pt (95 % CI {row['ci95_low_pt']:+.2f} to "
                         f"{row['ci95_high_pt']:+.2f}, {state})")  # fmt: skip
    notes = (f"digits, {len(seeds)} seeds, {time.perf_counter() - started:.0f} s. " + "; ".join(lines) + ". A negative interval "
             "means the method hurts.")  # fmt: skip
    return {"rows": rows, "notes": notes}
