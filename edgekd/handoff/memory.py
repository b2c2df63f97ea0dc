"""Memory budget of a TFLite Micro deployment: flash (model + kernel code) and RAM (arena + I/O), and its limits.

- flash = the .tflite bytes (exact: the C array) + an *estimate* of the code TFLM links for this model: the
  interpreter core plus the kernel source files of the op resolver's operators, each file counted once
  (tflm_code_size.py, measured by bench/tools/tflm_code_size.py; its BASIS says how). Vendor kernels
  (CMSIS-NN), the compiler, -Os/-O2 and link-time garbage collection move the real figure either way.
- RAM = the tensor arena the firmware allocates (measured in TFLM's interpreter + `arena_margin`) + one
  application-side buffer per input and output (the raw sample before it is written into the arena's
  input tensor, the results copied out), at the tensors' sizes. Stack, heap and the rest of the firmware
  are not included.

Budgets (`[handoff] max_arena_kb` / `max_flash_kb`, KiB = 1024 bytes) fail the handoff with the overrun named.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgekd.errors import HandoffError

KIB = 1024


def flash_estimate(model_bytes: int, operators: Iterable[str]) -> dict[str, Any]:
    """Model bytes + estimated TFLM core and kernel code for `operators` (builtin names, e.g. "CONV_2D")."""
    from edgekd.handoff import tflm_code_size as table

    ops = sorted(set(operators))
    files: dict[str, int] = {}
    per_op: dict[str, int] = {}
    unknown: list[str] = []
    for op in ops:
        sources = table.OP_FILES.get(op)
        if sources is None:
            unknown.append(op)
            continue
        per_op[op] = sum(table.FILE_TEXT_BYTES[name] for name in sources)
        files.update({name: table.FILE_TEXT_BYTES[name] for name in sources})
    kernels = sum(files.values())  # a file shared by several operators (elementwise.cc) once
    core = sum(table.CORE_TEXT_BYTES.values())
    return {
        "total_bytes": int(model_bytes) + kernels + core,
        "model_bytes": int(model_bytes),
        "kernel_code_bytes": kernels,
        "core_code_bytes": core,
        "kernel_code_per_op": per_op,
        "ops_without_estimate": unknown,
        "method": "estimate",
        "basis": table.BASIS,
        "note": "model bytes are exact; code is an estimate (reference kernels compiled alone, before linking): "
        "CMSIS-NN or other vendor kernels, the compiler and its flags change it; the rest of the firmware is not included",
    }


def ram_estimate(arena: dict[str, Any], inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The arena to allocate (measured + margin) + one application buffer per input and output."""
    io = sum(int(t.get("bytes") or 0) for t in inputs) + sum(int(t.get("bytes") or 0) for t in outputs)
    return {
        "total_bytes": int(arena["bytes"]) + io,
        "arena_bytes": int(arena["bytes"]),
        "arena_method": arena.get("method"),
        "io_bytes": io,
        "note": 'arena as allocated (its method and margin under "arena") + one buffer per input and output outside '
        "the arena, at the tensors' sizes; stack, heap and the rest of the firmware are not included",
    }


def memory_section(
    model_bytes: int, operators: Iterable[str], arena: dict[str, Any], manifest: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's / bundle.json's "memory": flash and ram."""
    return {
        "flash": flash_estimate(model_bytes, operators),
        "ram": ram_estimate(arena, manifest.get("inputs", []), manifest.get("outputs", [])),
        "unit_note": "bytes; budgets ([handoff] max_arena_kb / max_flash_kb) in KiB of 1024 bytes",
    }


def check_budgets(
    memory: dict[str, Any], *, max_arena_kb: float | None, max_flash_kb: float | None, model: str
) -> None:
    """HandoffError naming every overrun (arena and/or flash) and what it is made of; nothing when within budget."""
    problems: list[str] = []
    hints: list[str] = []
    ram, flash = memory["ram"], memory["flash"]
    if max_arena_kb is not None and ram["arena_bytes"] > max_arena_kb * KIB:
        over = ram["arena_bytes"] - max_arena_kb * KIB
        problems.append(f"tensor arena {_kib(ram['arena_bytes'])} ({ram['arena_method']}, with arena_margin) exceeds "
                        f"max_arena_kb = {max_arena_kb:g} by {_kib(over)}")  # fmt: skip
        hints.append("a smaller student (width, input size) or arena_margin lowers the arena")
    if max_flash_kb is not None and flash["total_bytes"] > max_flash_kb * KIB:
        over = flash["total_bytes"] - max_flash_kb * KIB
        problems.append(f"flash estimate {_kib(flash['total_bytes'])} (model {_kib(flash['model_bytes'])} + kernel code "
                        f"{_kib(flash['kernel_code_bytes'])} + TFLM core {_kib(flash['core_code_bytes'])}, code estimated) "
                        f"exceeds max_flash_kb = {max_flash_kb:g} by {_kib(over)}")  # fmt: skip
        hints.append("fewer parameters or int8 weights shrink the model")
    if problems:
        raise HandoffError(f"{model} does not fit the memory budget: " + "; ".join(problems),
                           hint="; ".join(hints) + ", or raise the budget in [handoff] (KiB = 1024 bytes)")  # fmt: skip


def _kib(n: float) -> str:
    return f"{n / KIB:.1f} KiB"
