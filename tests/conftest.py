"""Shared test settings: keep every test away from the user's real history, caches and inventory."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.registry_coverage import MARKER, RegistryCoverage


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-covered",
        action="append",
        default=[],
        metavar="ENTRY",
        help="fail unless a test covering this registry entry (e.g. converter:litert_torch) ran and passed",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A suite started as a background job of a non-interactive shell (`make test &`, `nohup ... &`) inherits
    # SIGINT ignored, and so would every edgekd process the Ctrl-C tests start: they would never see the signal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The registry meta-test (tests/support/registry_coverage.py, proved by tests/core/test_registry_meta.py).
    config.addinivalue_line("markers", MARKER)
    config.pluginmanager.register(RegistryCoverage(required=config.getoption("--require-covered")), "registry-coverage")


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path_factory.getbasetemp() / "edgekd-state"
    state.mkdir(exist_ok=True)
    monkeypatch.setenv("EDGEKD_HISTORY", str(state / "history.sqlite"))
    monkeypatch.delenv("EDGEKD_TARGETS", raising=False)


# Quiet TensorFlow's C++ logging in every test process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
