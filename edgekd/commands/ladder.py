"""`edgekd quantize MODEL.onnx --max-drop 0.01 --data D`: the accuracy-budgeted ORT quantization ladder.

`quantize_cmd` (edgekd/commands/export.py) hands over here when a budget is given. Heavy packages are
imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd import console


def run_and_print_ladder(
    model: Path,
    data: Path,
    calibration: Path,
    out: Path,
    *,
    max_drop: float,
    raise_to: str = "float",
    runs: int = 300,
    runtimes: tuple[str, ...] = ("ort",),
) -> None:
    """Quantize within an accuracy budget: PTQ, then per-op sensitivity, then mixed precision (ONNX Runtime);
    with `runtimes` naming litert/tflm, the int8 TFLite rows too."""
    from edgekd.quantize.ladder import run_ladder

    result = run_ladder(
        model, data, calibration, out, max_drop=max_drop, runs=runs, raise_to=raise_to, runtimes=runtimes
    )
    if console.is_json():
        console.emit_json(
            {
                "chosen": result.chosen,
                "model": str(result.model),
                "recommended": result.recommended,
                "rows": result.rows,
            }
        )
        return
    print_rows(result.rows, result.reused)
    console.say(f"within the budget at rung {result.chosen['rung']}: {result.model}")
    for runtime, pick in result.recommended.items():
        if runtime != "ort":
            console.say(f"{runtime}: rung {pick['rung']} ({pick['name']}), {out / pick['model']}")


def print_rows(rows: list[dict[str, Any]], reused: list[int]) -> None:
    """One line per rung (ORT's figures), and one per other runtime that rung has a model for."""
    for row in rows:
        console.say(
            f"rung {row['rung']} {row['name']:<16} accuracy {row['accuracy']:.4f}  drop {row['drop']:+.4f}  "
            f"agreement {row['agreement']:.4f}  p50 {_ms(row['p50_ms'])}  float ops: {', '.join(row.get('excluded') or []) or '-'}"
            + (f"  int16 ops: {', '.join(row['int16'])}" if row.get("int16") else "")
            + ("  (reused)" if row["rung"] in reused else "")
        )
        for runtime, figures in row.get("runtimes", {}).items():
            if runtime != "ort":
                accuracy = "-" if figures.get("accuracy") is None else f"{figures['accuracy']:.4f}"
                drop = "-" if figures.get("drop") is None else f"{figures['drop']:+.4f}"
                agreement = "-" if figures.get("agreement") is None else f"{figures['agreement']:.4f}"
                console.say(
                    f"    {runtime:<6} accuracy {accuracy}  drop {drop}  agreement {agreement}  "
                    f"p50 {_ms(figures.get('p50_ms'))}  ({figures.get('model', figures.get('error', '-'))})"
                )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"
