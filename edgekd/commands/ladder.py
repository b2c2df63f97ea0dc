"""`edgekd quantize MODEL.onnx --max-drop 0.01 --data D`: the accuracy-budgeted ORT quantization ladder.

A plain typer-annotated function; cli.py registers it. Heavy packages are imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd import console


def ladder_cmd(
    model: Annotated[Path, typer.Argument(help="fp32 ONNX model")],
    data: Annotated[Path, typer.Option("--data", "-d", help="validation set .npz: 'x' (model inputs, float) and 'y' (class indices)")],
    calibration: Annotated[Path, typer.Option("--calibration", "-c", help="calibration set .npz (array 'x', float)")],
    max_drop: Annotated[float, typer.Option("--max-drop", help="largest accepted top-1 accuracy drop vs fp32, absolute (0.01 = 1 point)")] = 0.01,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for ladder.json, sensitivity.json and the int8 models")] = Path("."),
    raise_to: Annotated[str, typer.Option("--raise-to", help="rung 3 raises sensitive ops to float (fast on CPU) or to int16 activations (for NPUs; then float)")] = "float",
    runs: Annotated[int, typer.Option("--runs", min=1, help="latency runs per model (single thread; the median is reported)")] = 300,
) -> None:
    """Quantize within an accuracy budget: PTQ, then per-op sensitivity, then mixed precision (ONNX Runtime)."""
    from edgekd.quantize.ladder import run_ladder

    result = run_ladder(model, data, calibration, out, max_drop=max_drop, runs=runs, raise_to=raise_to)
    if console.is_json():
        console.emit_json({"chosen": result.chosen, "model": str(result.model), "rows": result.rows})
        return
    for row in result.rows:
        console.say(f"rung {row['rung']} {row['name']:<16} accuracy {row['accuracy']:.4f}  drop {row['drop']:+.4f}  "
                    f"agreement {row['agreement']:.4f}  p50 {row['p50_ms']:.3f} ms  float ops: {', '.join(row['excluded']) or '-'}"
                    + (f"  int16 ops: {', '.join(row['int16'])}" if row.get("int16") else "")
                    + ("  (reused)" if row["rung"] in result.reused else ""))
    console.say(f"within the budget at rung {result.chosen['rung']}: {result.model}")
