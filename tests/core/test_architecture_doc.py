"""docs/ARCHITECTURE.md and the README's layout paragraph match the tree: every package and top-level
module of edgekd/ is named in the architecture doc, and every edgekd/… path either document names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PATH = re.compile(r"`(edgekd/[\w./-]*)`")


def _named(text: str) -> set[str]:
    return {match.rstrip("/") for match in PATH.findall(text)}


def test_every_package_and_top_level_module_is_in_the_architecture_doc() -> None:
    named = _named(DOC.read_text(encoding="utf-8"))
    packages = {
        path.parent.relative_to(ROOT).as_posix()
        for path in (ROOT / "edgekd").rglob("__init__.py")
        if path.parent != ROOT / "edgekd"
    }
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "edgekd").glob("*.py")} - {"edgekd/__init__.py"}
    missing = sorted((packages | modules) - named)
    assert not missing, f"docs/ARCHITECTURE.md does not name: {', '.join(missing)}"


def test_every_path_the_docs_name_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    development = readme[readme.index("## Development") :]
    named = _named(DOC.read_text(encoding="utf-8")) | _named(development)
    gone = sorted(path for path in named if not (ROOT / path).exists())
    assert not gone, f"the docs name paths that do not exist: {', '.join(gone)}"
