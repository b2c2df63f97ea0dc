"""RaplMeter replaying powercap trees (package zones only, counter wrap-around, root-only counters)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from edgekd.energy_protocol import EnergyMeter
from edgekd.targets.energy.rapl import RaplMeter, counter_delta

RECORDINGS = Path(__file__).resolve().parents[1] / "support" / "recordings" / "rapl"


class ReplayClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(tree: str, tmp_path: Path) -> tuple[Path, list[dict], ReplayClock, RaplMeter]:
    root = tmp_path / tree
    shutil.copytree(RECORDINGS / tree, root)
    readings = json.loads((root / "readings.json").read_text())["readings"]
    clock = ReplayClock()
    return root, readings, clock, RaplMeter(root, clock=clock)


def set_reading(root: Path, clock: ReplayClock, reading: dict) -> None:
    clock.now = reading["t"]
    for zone, value in reading.items():
        if zone != "t":
            (root / zone / "energy_uj").write_text(f"{value}\n")


@pytest.mark.covers("meter:rapl")
@pytest.mark.parametrize(
    ("tree", "expected_j"),
    [("intel-client", [4.1, 4.1, 14.0, 14.0]), ("amd-epyc-2s", [360.0])],
)
def test_replayed_windows_give_joules_including_wraps(tree: str, expected_j: list[float], tmp_path: Path) -> None:
    root, readings, clock, meter = replay(tree, tmp_path)
    assert isinstance(meter, EnergyMeter)
    assert meter.available() is None
    got, wrapped = [], []
    for before, after in itertools.pairwise(readings):
        set_reading(root, clock, before)
        meter.start()
        set_reading(root, clock, after)
        window = meter.stop()
        got.append(window.joules)
        wrapped.append(any("wrapped" in note for note in window.notes))
        assert window.seconds == pytest.approx(after["t"] - before["t"])
        assert window.method == "rapl" and window.coverage == "package"
    assert got == pytest.approx(expected_j)
    assert any(wrapped)  # each recording holds one wrap, and it is reported


def test_only_package_zones_are_summed(tmp_path: Path) -> None:
    root, *_ = replay("intel-client", tmp_path)
    names = [zone.name for zone in RaplMeter(root).zones()]
    assert names == ["intel-rapl:0"]  # not core/uncore subzones, not psys, not the mmio duplicate


def test_counter_delta() -> None:
    assert counter_delta(10, 25, 100) == (15, False)
    assert counter_delta(90, 5, 100) == (15, True)


def test_missing_powercap_says_why(tmp_path: Path) -> None:
    reason = RaplMeter(tmp_path / "nope").available()
    assert reason and "no RAPL powercap interface" in reason and "virtual machines" in reason
    (tmp_path / "empty").mkdir()
    assert "no RAPL package zones" in (RaplMeter(tmp_path / "empty").available() or "")


def test_root_only_counter_is_diagnosed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux >= 5.10 makes energy_uj 0400 root:root; tests run as root, so the denial is injected."""
    root, *_ = replay("intel-client", tmp_path)
    meter = RaplMeter(root)
    original = RaplMeter._read_int

    def denied(self: RaplMeter, path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return original(self, path)

    monkeypatch.setattr(RaplMeter, "_read_int", denied)
    reason = meter.available()
    assert reason and "readable only by root" in reason and "chmod o+r" in reason


def test_this_machine_reports_a_clean_reason() -> None:
    """The CI machine has no powercap: available() explains, and nothing raises."""
    meter = RaplMeter()
    reason = meter.available()
    if reason is None:
        pytest.skip("this machine exposes RAPL")
    assert "RAPL" in reason
