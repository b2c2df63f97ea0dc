"""The registry meta-test: every converter, target kind and energy meter has a test that ran and passed.

A test says what it exercises with `@pytest.mark.covers("converter:onnx2tf", "meter:rapl", ...)` (kinds:
converter, target, meter; names as in edgekd.registry). `RegistryCoverage` (registered by tests/conftest.py)
records each covering test's outcome; when the whole suite ran (no -k/-m/file subset), an entry without a
passing covering test fails the session with one line naming it. A skipped test does not count, unless the
entry is an optional extra (`extra`) with a CI job that installs it (`ci_job`): that job passes
`--require-covered <entry>` so its own run fails when the tests skip there too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pytest

MARKER = "covers(*entries): registry entries this test exercises, e.g. 'converter:onnx2tf', 'target:ssh', 'meter:rapl'"


def registry_entries() -> dict[str, bool]:
    """Every registry entry as "<kind>:<name>" -> whether a skip may stand in for a pass (an optional extra
    that a CI job of its own installs and tests)."""
    from edgekd import registry

    entries = {f"converter:{name}": bool(e.extra and e.ci_job) for name, e in registry.CONVERTERS.items()}
    entries.update({f"target:{name}": False for name in registry.TARGET_KINDS})
    entries.update({f"meter:{name}": False for name in registry.ENERGY_METERS})
    return entries


def uncovered(entries: Mapping[str, bool], passed: Iterable[str], skipped: Iterable[str]) -> list[str]:
    """One line per entry that no covering test passed for (skipped-only counts as missing unless excused)."""
    passed, skipped = set(passed), set(skipped)
    lines = []
    for entry, skip_is_enough in entries.items():
        if entry in passed or (entry in skipped and skip_is_enough):
            continue
        why = "only skipped tests" if entry in skipped else "no test"
        lines.append(f"registry entry {entry} has {why}: mark a test that exercises it @pytest.mark.covers({entry!r})")
    return lines


def unknown(entries: Mapping[str, bool], marked: Iterable[str]) -> list[str]:
    """One line per covers() argument that names no registry entry (a typo would cover nothing)."""
    return [f"@pytest.mark.covers({name!r}) names no registry entry" for name in sorted(set(marked) - set(entries))]


def whole_suite(config: pytest.Config) -> bool:
    """True when this session ran every test: default test paths, no -k, -m, --deselect or --lf."""
    option = config.option
    subset = (
        getattr(option, "keyword", "")
        or getattr(option, "markexpr", "")
        or getattr(option, "deselect", None)
        or getattr(option, "lf", False)
        or getattr(option, "collectonly", False)
    )
    return config.args_source is pytest.Config.ArgsSource.TESTPATHS and not subset


@dataclass(eq=False)  # a pytest plugin object: registered and looked up by identity
class RegistryCoverage:
    """A pytest plugin: collects covers() markers and outcomes, checks them at the end of the session."""

    required: list[str] = field(default_factory=list)  # --require-covered: checked even in a subset run
    marked: dict[str, tuple[str, ...]] = field(default_factory=dict)  # test node id -> entries it covers
    passed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            entries = tuple(str(arg) for mark in item.iter_markers("covers") for arg in mark.args)
            if entries:
                self.marked[item.nodeid] = entries

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entries = self.marked.get(report.nodeid, ())
        if report.skipped:
            self.skipped.update(entries)
        elif report.when == "call" and report.passed:
            self.passed.update(entries)

    def problems(self, config: pytest.Config) -> list[str]:
        """What this session leaves uncovered (empty when a subset ran and nothing is required)."""
        entries = registry_entries()
        lines = unknown(entries, [e for marked in self.marked.values() for e in marked])
        if whole_suite(config):
            lines += uncovered(entries, self.passed, self.skipped)
        lines += unknown(entries, self.required)
        lines += uncovered({e: False for e in self.required if e in entries}, self.passed, self.skipped)
        return list(dict.fromkeys(lines))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        lines = self.problems(session.config)
        if not lines:
            return
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for line in lines:
            if reporter is not None:
                reporter.write_line(f"REGISTRY META-TEST: {line}", red=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
