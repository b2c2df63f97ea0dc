"""The dependency rules of docs/ARCHITECTURE, read from the source with `ast` (nothing is imported):

- core (edgekd/* outside targets/, converters/, commands/ and cli.py) never imports edgekd.targets or
  edgekd.converters when it is imported: only inside functions or under `if TYPE_CHECKING:`;
- a converter never imports another converter;
- the device runner imports only the standard library, numpy and the inference runtimes.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EDGEKD = Path(__file__).resolve().parents[2] / "edgekd"
BACKENDS = ("edgekd.targets", "edgekd.converters")
NOT_CORE = ("targets", "converters", "commands")
RUNNER = EDGEKD / "targets" / "runner" / "edgekd_runner.py"
#: flatbuffers is ai-edge-litert's own dependency (installed with it; the runner reads LiteRT's schema with it,
#: inside a function that reports its absence).
RUNNER_ALLOWED = {"numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "tflite_micro", "flatbuffers"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(EDGEKD.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """Absolute names an import statement brings in (relative imports resolved against `module`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".")[: -node.level] if node.level else []
        base = ".".join([*package, *([base] if base else [])])
    return [f"{base}.{alias.name}" if base else alias.name for alias in node.names] + [base]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_imports(tree: ast.Module, module: str) -> Iterator[tuple[int, str]]:
    """(line, name) of imports run when the module is imported: not inside a function or a lambda, not
    under `if TYPE_CHECKING:` (class bodies and module-level try/if do run at import)."""

    def walk(nodes: list[ast.stmt]) -> Iterator[tuple[int, str]]:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield from ((node.lineno, name) for name in _imported(node, module))
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    yield from walk(block)
            elif isinstance(node, (ast.With, ast.For, ast.While)):
                yield from walk(node.body)

    yield from walk(tree.body)


def all_imports(tree: ast.Module, module: str) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from ((node.lineno, name) for name in _imported(node, module))


def core_files() -> list[Path]:
    return sorted(
        path
        for path in EDGEKD.rglob("*.py")
        if path.relative_to(EDGEKD).parts[0] not in NOT_CORE and path.name != "cli.py"
    )


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_core_never_imports_targets_or_converters_at_import_time() -> None:
    found = [
        f"{path.relative_to(EDGEKD.parent)}:{line} imports {name}"
        for path in core_files()
        for line, name in import_time_imports(_parse(path), _module_name(path))
        if name.startswith(BACKENDS)
    ]
    assert len(core_files()) > 50 and not found, "\n".join(found)


@pytest.mark.parametrize("path", sorted((EDGEKD / "converters").glob("*.py")), ids=lambda p: p.name)
def test_a_converter_never_imports_another_converter(path: Path) -> None:
    own = _module_name(path)
    others = [
        f"line {line}: {name}"
        for line, name in all_imports(_parse(path), own)
        if name.startswith("edgekd.converters.") and not name.startswith(own)
    ]
    assert not others, f"{path.name} imports another converter: {others}"


def test_the_runner_imports_only_the_standard_library_numpy_and_runtimes() -> None:
    names = {name.split(".")[0] for _line, name in all_imports(_parse(RUNNER), "edgekd_runner") if name}
    foreign = sorted(names - RUNNER_ALLOWED - set(sys.stdlib_module_names) - {"__future__"})
    assert "numpy" in names and not foreign, f"the runner imports {foreign}"


def test_the_checks_catch_what_they_forbid() -> None:
    """The walkers see an import at module level, in a class and in a try, and skip functions and
    TYPE_CHECKING blocks (so a passing test above is not a test that cannot fail)."""
    source = (
        "from typing import TYPE_CHECKING\nimport edgekd.targets.local\n"
        "if TYPE_CHECKING:\n    from edgekd.converters import onnx_quant\n"
        "try:\n    from edgekd.converters.torch_onnx import X\nexcept ImportError:\n    pass\n"
        "class A:\n    from edgekd.targets import thermal\n"
        "def f():\n    import edgekd.targets.ssh\n"
        "from . import sibling\n"
    )
    found = {name for _line, name in import_time_imports(ast.parse(source), "edgekd.bench.x")}
    assert {"edgekd.targets.local", "edgekd.converters.torch_onnx.X", "edgekd.targets.thermal"} <= found
    assert "edgekd.converters.onnx_quant" not in found and "edgekd.targets.ssh" not in found
    assert "edgekd.bench.sibling" in found
    everything = {name for _line, name in all_imports(ast.parse(source), "edgekd.bench.x")}
    assert "edgekd.targets.ssh" in everything
