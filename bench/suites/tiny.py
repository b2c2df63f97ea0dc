"""MLPerf Tiny reference models on a microcontroller: parameters, MACs, int8 size, measured arena, flash, Vela.

For each reference architecture (edgekd.distill.tiny_models, layer for layer as mlcommons/tiny) at its
reference input size: seeded random weights (arena, flash and Vela's figures do not depend on the
values), torch -> ONNX (opset 18) -> full-int8 TFLite (`edgekd quantize --to tflite`, 64 random-normal
calibration samples) -> `edgekd handoff --platform ethos-u55-128`, which measures the TFLM arena,
estimates flash (model + TFLM code, see edgekd/handoff/memory.py) and runs Vela. The autoencoder is
architecture only in edgekd (no reconstruction objective), but its memory figures are the same.

Not here (yet): accuracy on full Fashion-MNIST / CIFAR-10 and the MLPerf Tiny results table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# name: (arch, input shape without batch, classes) at the MLPerf Tiny reference sizes
MODELS = {
    "resnet8": ("resnet8", (3, 32, 32), 10),
    "dscnn": ("dscnn", (1, 49, 10), 12),
    "mobilenet_v1_0.25": ("mobilenet_v1", (3, 96, 96), 2),
    "fc_autoencoder": ("fc_autoencoder", (640,), 0),
}
ACCELERATOR = "ethos-u55-128"


def _edgekd(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "--json", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=1800, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"edgekd {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _int8_tflite(name: str, arch: str, shape: tuple[int, ...], classes: int, work: Path) -> tuple[Path, int, int]:
    import numpy as np
    import torch

    from edgekd.distill.flops import count_flops
    from edgekd.distill.tiny_models import build_tiny

    torch.manual_seed(0)
    model = build_tiny(arch, shape, classes).eval()
    params = sum(p.numel() for p in model.parameters())
    macs = count_flops(model, shape) // 2  # count_flops counts a multiply-accumulate as 2 FLOPs
    onnx_path = work / f"{name}.onnx"
    torch.onnx.export(model, (torch.zeros(1, *shape),), str(onnx_path), dynamo=True, opset_version=18, external_data=False)
    np.savez(work / "calibration.npz", x=np.random.default_rng(0).normal(size=(64, *shape)).astype(np.float32))
    _edgekd("quantize", str(onnx_path), "--to", "tflite", "-c", str(work / "calibration.npz"), "--out", str(work / name))
    tflite = next((work / name).glob("*int8*.tflite"))
    return tflite, params, macs


def run(quick: bool) -> dict[str, Any]:
    rows = []
    for name, (arch, shape, classes) in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            try:
                tflite, params, macs = _int8_tflite(name, arch, shape, classes, Path(tmp))
            except RuntimeError as exc:  # recorded, not hidden: the other models still run
                rows.append({"model": name, "input": list(shape), "error": str(exc).splitlines()[0][-400:]})
                continue
            handoff = _edgekd("handoff", str(tflite), "--out", str(Path(tmp) / "handoff"), "--platform", ACCELERATOR,
                              "--model-name", name.replace(".", "_"), "--no-zip")["handoff"]  # fmt: skip
            memory, vela = handoff["memory"], handoff["ethos_u"]
            rows.append({
                "model": name, "input": list(shape), "params": params, "macs": macs,
                "int8_bytes": handoff["model_bytes"], "arena_bytes": handoff["arena_bytes"], "arena_method": handoff["arena_method"],
                "flash_estimate_bytes": memory["flash"]["total_bytes"], "kernel_code_bytes": memory["flash"]["kernel_code_bytes"],
                "core_code_bytes": memory["flash"]["core_code_bytes"], "ram_bytes": memory["ram"]["total_bytes"],
                "operators": handoff["operators"],
                "vela": {k: vela[k] for k in ("accelerator", "system_config", "memory_mode", "core_clock_hz", "sram_bytes",
                                             "off_chip_flash_bytes", "npu_operators", "cpu_operators", "cpu_operator_types",
                                             "cycles_total", "inferences_per_second", "version")},
                "seconds": round(time.perf_counter() - start, 1),
            })  # fmt: skip
    return {"rows": rows, "notes": (__doc__ or "").strip()}
