"""Firmware handoff: bundle build time, compile-check time, and the arena estimate against TFLM.

For each model (the handoff tests' small models plus full-int8 dense models of ~0.13 MB and ~2 MB) the
whole bundle is built (parse, golden vectors with LiteRT, TFLM arena measurement with bisection,
sources, g++ compile of model_data.cc + check program, zip). Reported: best-of-N build seconds, the g++
share, the measured arena (smallest working size found) vs the liveness-planner estimate (the fallback
when tflite-micro is missing). Goals: estimate within ±25% of the measured arena; a bundle of a model
under 100 kB builds in under 5 s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ESTIMATE_GOAL = 0.25  # relative error of the estimate against the measured arena
SMALL_BUILD_GOAL_S = 5.0


def _build(model: Path, out: Path, name: str) -> tuple[float, Any]:
    from edgekd.artifacts import describe_file
    from edgekd.config.handoff import HandoffConfig
    from edgekd.handoff.bundle import build_handoff

    start = time.perf_counter()
    result = build_handoff(
        describe_file(model),
        out,
        HandoffConfig(model_name=name),
        labels=[],
        preprocessing={},
        calibration=None,
        bench_summary=[],
        versions={},
    )
    return time.perf_counter() - start, result


def _compile_seconds(bundle: Path) -> float:
    import subprocess

    start = time.perf_counter()
    subprocess.run(["g++", "-std=c++11", "-O0", "-c", str(bundle / "model_data.cc"), "-o", "/dev/null"], check=True)
    return time.perf_counter() - start


def run(quick: bool) -> dict[str, Any]:
    from edgekd.handoff.arena import estimate_head, estimate_tail
    from edgekd.handoff.tflite_reader import read_tflite
    from tests.support.tflite_models import build_dense_int8, build_tflite_models

    repeats = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-handoff-") as tmp_text:
        tmp = Path(tmp_text)
        models = {
            name: path
            for name, path in build_tflite_models(tmp / "models").items()
            if name in ("cnn_fp32", "cnn_int8", "multi_io_int8")
        }
        for units in (256,) if quick else (256, 1024):
            models[f"dense{units}_int8"] = build_dense_int8(tmp / "models", units)
        for name, path in models.items():
            times, result = [], None
            for attempt in range(repeats):
                seconds, result = _build(path, tmp / f"{name}-{attempt}" / "handoff", name)
                times.append(seconds)
            model = read_tflite(path)
            estimate = estimate_head(model) + estimate_tail(model)
            measured = result.arena["basis_bytes"]
            error = (estimate - measured) / measured
            rows.append(
                {
                    "model": name,
                    "tflite_bytes": path.stat().st_size,
                    "build_s_best": round(min(times), 3),
                    "gxx_model_data_s": round(_compile_seconds(result.path), 3),
                    "arena_measured_bytes": measured,
                    "arena_reported_total": result.arena["reported_total"],
                    "arena_estimate_bytes": estimate,
                    "estimate_error": round(error, 3),
                    "head_measured": result.arena["head_bytes"],
                    "head_estimate": estimate_head(model),
                    "estimate_within_goal": abs(error) <= ESTIMATE_GOAL,
                    "golden_tflm_max_abs_diff": result.golden.get("tflm_max_abs_diff"),
                }
            )
    small = [r for r in rows if r["tflite_bytes"] < 100_000]
    within = sum(r["estimate_within_goal"] for r in rows)
    verdict = (
        f"estimate within ±{ESTIMATE_GOAL:.0%} of the measured arena for {within}/{len(rows)} models; "
        f"small-model bundles built in ≤ {max(r['build_s_best'] for r in small):.2f} s "
        f"(goal < {SMALL_BUILD_GOAL_S:.0f} s)"
    )
    return {"rows": rows, "notes": (__doc__ or "").strip() + "\n\nVerdict: " + verdict}
