"""PerfEnergyMeter against recorded `perf stat -x,` output (a stand-in perf script) and this machine's perf."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from edgekd.targets.energy import FirstAvailableMeter
from edgekd.targets.energy.perf import PerfEnergyMeter, parse_perf_joules
from edgekd.targets.energy.rapl import RaplMeter

# `perf stat -a -x, -e power/energy-pkg/` on an Intel desktop, then on a VM without the power PMU.
RECORDED_OK = "3.41,Joules,power/energy-pkg/,1001234567,100.00,,\n"
RECORDED_NO_PMU = (
    "event syntax error: 'power/energy-pkg/'\n                     \\___ Cannot find PMU `power'. "
    "Missing kernel support?\n"
)

FAKE_PERF = """#!{python}
import signal, sys, time
out = {output!r}
if sys.argv[-2:] == ["--", "true"]:
    sys.stderr.write(out); sys.exit({status})
signal.signal(signal.SIGINT, lambda *a: (sys.stderr.write(out), sys.exit(0)))
open(sys.argv[0] + ".ready", "w").close()
while True:
    time.sleep(0.01)
"""


def fake_perf(tmp_path: Path, output: str, status: int = 0) -> list[str]:
    script = tmp_path / "perf"
    script.write_text(FAKE_PERF.format(python=sys.executable, output=output, status=status))
    script.chmod(0o755)
    return [str(script)]


def test_parse_perf_joules() -> None:
    assert parse_perf_joules(RECORDED_OK) == pytest.approx(3.41)
    assert parse_perf_joules("<not counted>,Joules,power/energy-pkg/,0,0.00,,") is None
    assert parse_perf_joules(RECORDED_NO_PMU) is None


@pytest.mark.covers("meter:perf")
def test_window_from_recorded_perf_output(tmp_path: Path) -> None:
    meter = PerfEnergyMeter(fake_perf(tmp_path, RECORDED_OK))
    assert meter.available() is None
    meter.start()
    ready = Path(meter.perf_argv[0] + ".ready")
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:  # the stand-in has its SIGINT handler
        time.sleep(0.01)
    window = meter.stop()
    assert window.joules == pytest.approx(3.41) and window.method == "perf" and window.seconds > 0


def test_missing_pmu_is_explained(tmp_path: Path) -> None:
    reason = PerfEnergyMeter(fake_perf(tmp_path, RECORDED_NO_PMU, status=129)).available()
    assert reason and "no power/energy-pkg/ event" in reason


def test_missing_perf_binary_names_the_package(tmp_path: Path) -> None:
    reason = PerfEnergyMeter([str(tmp_path / "no-perf")]).available()
    assert reason and "not installed" in reason and "linux-perf" in reason


def test_first_available_falls_back_to_perf_and_joins_reasons(tmp_path: Path) -> None:
    chain = FirstAvailableMeter([RaplMeter(tmp_path / "none"), PerfEnergyMeter(fake_perf(tmp_path, RECORDED_OK))])
    assert chain.available() is None and chain.name == "perf"
    both_missing = FirstAvailableMeter([RaplMeter(tmp_path / "none"), PerfEnergyMeter([str(tmp_path / "x")])])
    reason = both_missing.available()
    assert reason and reason.startswith("rapl: ") and "; perf: " in reason


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed here")
def test_this_machines_perf_reports_why_it_cannot_count() -> None:
    reason = PerfEnergyMeter().available()
    if reason is None:
        pytest.skip("this machine counts package energy with perf")
    assert "perf" in reason
