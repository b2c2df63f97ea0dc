"""The demo's wall time and the time of each stage; then the same run again (all cache hits)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _edgekd(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgekd.cli", "--quiet", *args], check=True, cwd=ROOT)
    return time.perf_counter() - started


def run(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "digits"
        cold = _edgekd("run", "examples/digits.toml", "--out", str(out))
        from edgekd.stages import STAGE_NAMES

        stages = {}
        for name in STAGE_NAMES:  # pipeline order
            manifest = out / ".edgekd" / "stages" / f"{name}.json"
            if manifest.exists():
                stages[name] = json.loads(manifest.read_text())["seconds"]
        warm = _edgekd("run", "examples/digits.toml", "--out", str(out))
        help_time = min(_edgekd("--help") for _ in range(3))
    rows = [{"what": "demo, cold (every stage runs)", "seconds": round(cold, 2)}]
    rows += [{"what": f"  stage {name}", "seconds": seconds} for name, seconds in stages.items()]
    rows += [
        {"what": "demo, warm (every stage a cache hit)", "seconds": round(warm, 2)},
        {"what": "edgekd --help (best of 3)", "seconds": round(help_time, 3)},
    ]
    return {
        "rows": rows,
        "notes": f"Goal: a warm rerun under 10 s (measured {warm:.1f} s). Stage times come from the stage manifests.",
    }
