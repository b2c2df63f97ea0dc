"""Fuzzing every parser of device output: whatever a device prints, nothing escapes but EdgekdError.

Inputs are real recordings (tests/support/recordings) mutated the way broken tools and transports mutate
them: numbers swapped for extreme ones that still look like numbers (1e999, 400 digits, -0), lines cut
short, noise spliced in; plus free-form text and JSON. A parser may return or raise an EdgekdError subclass;
any other exception is an escape the CLI would report as an internal error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekd.bench.orchestrate import RUN_SCHEMA, parse_runner_output
from edgekd.errors import EdgekdError
from edgekd.target_protocol import Completed
from edgekd.targets import thermal
from edgekd.targets.adb import parsers as adb_parsers
from edgekd.targets.energy.android_battery import BATTERY_FILES, SUPPLY_FILES, AndroidBatteryMeter
from edgekd.targets.energy.hwmon_ina import HwmonInaMeter
from edgekd.targets.energy.pi_pmic import Pi5PmicMeter, parse_pmic_adc
from edgekd.targets.energy.usb_meter import read_power_log, window_from_log

RECORDINGS = Path(__file__).resolve().parents[1] / "support" / "recordings"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

odd_numbers = st.one_of(
    st.sampled_from(["0", "-0", "-1", "1e999", "-1e999", "1e-999", "9" * 400, "0.0", "2.95034e+06", "-5"]),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.6g}"),
)
noise = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


def recordings(*patterns: str) -> list[str]:
    texts = [
        path.read_text(encoding="utf-8", errors="replace") for p in patterns for path in sorted(RECORDINGS.glob(p))
    ]
    assert texts, f"no recordings match {patterns}"
    return texts


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    """A recording with some numbers replaced, maybe cut short, maybe with noise spliced in."""
    text = draw(st.sampled_from(texts))
    pieces, numbers = NUMBER.split(text), NUMBER.findall(text)
    swap = draw(st.sets(st.integers(0, max(0, len(numbers) - 1)), max_size=8))
    out = []
    for index, piece in enumerate(pieces):
        out.append(piece)
        if index < len(numbers):
            out.append(draw(odd_numbers) if index in swap else numbers[index])
    result = "".join(out)
    if draw(st.booleans()):
        result = result[: draw(st.integers(0, len(result)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(result)))
        result = result[:at] + draw(noise) + result[at:]
    return result


def returns_or_edgekd_error(parse: Any, *args: Any) -> Any:
    """parse(*args), or None when it raised an EdgekdError; any other exception fails the test."""
    try:
        return parse(*args)
    except EdgekdError:
        return None


# --- Android tools (edgekd/targets/adb/parsers.py) ------------------------------------------------------

BENCHMARK_MODEL = recordings("android/benchmark_model/*.txt")
ORT_PERF_TEST = recordings("android/onnxruntime_perf_test/*.txt")


@SETTINGS
@given(text=st.one_of(mutated(BENCHMARK_MODEL), noise))
def test_benchmark_model_parser(text: str) -> None:
    returns_or_edgekd_error(adb_parsers.parse_benchmark_model, text)


@SETTINGS
@given(text=st.one_of(mutated(ORT_PERF_TEST), noise))
def test_ort_perf_test_parser(text: str) -> None:
    returns_or_edgekd_error(adb_parsers.parse_ort_perf_test, text)


# --- the runner's JSON document (edgekd/bench/orchestrate.py) --------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
runner_documents = st.fixed_dictionaries(
    {"schema": st.sampled_from([RUN_SCHEMA, "edgekd.run/0"])},
    optional={"error": json_values | st.fixed_dictionaries({}, optional={"kind": json_values, "message": json_values,
                                                                          "hint": json_values}),
              "latencies_ns": json_values, "summary": json_values},
)  # fmt: skip


@SETTINGS
@given(document=runner_documents, before=noise, returncode=st.integers(-9, 255), stderr=noise)
def test_runner_output_parser(document: dict[str, Any], before: str, returncode: int, stderr: str) -> None:
    stdout = before + "\n" + json.dumps(document) + "\n"
    completed = Completed(argv=["runner"], returncode=returncode, stdout=stdout, stderr=stderr, seconds=0.1)
    returns_or_edgekd_error(parse_runner_output, completed, "phone")


@pytest.mark.parametrize("line", ["Total inference requests: 1e999", "Peak working set size: 1e999"])
def test_ort_perf_test_overflowing_number_is_a_bench_error(line: str) -> None:
    text = (RECORDINGS / "android/onnxruntime_perf_test/pixel6_resnet18_lutnn.txt").read_text(encoding="utf-8")
    text = re.sub(re.escape(line.split(":")[0]) + r":\s*\d+", line, text)
    assert line in text
    with pytest.raises(EdgekdError):
        adb_parsers.parse_ort_perf_test(text)


@pytest.mark.parametrize("error", [None, "out of memory", ["x"]])
def test_runner_error_that_is_not_an_object_is_a_bench_error(error: object) -> None:
    stdout = json.dumps({"schema": RUN_SCHEMA, "error": error})
    with pytest.raises(EdgekdError):
        parse_runner_output(Completed(["runner"], 1, stdout, "", 0.1), "phone")


# --- Raspberry Pi: vcgencmd, thermal zones, PMIC, INA hwmon, USB meter log ------------------------

PI_TEXTS = recordings("pi/*.txt")


@SETTINGS
@given(text=st.one_of(mutated(PI_TEXTS), noise))
def test_vcgencmd_parsers(text: str) -> None:
    returns_or_edgekd_error(thermal.parse_measure_temp, text)
    returns_or_edgekd_error(thermal.decode_throttled, text)
    returns_or_edgekd_error(thermal.soc_temperature, {"cpu-thermal": 50.0}, text)


@SETTINGS
@given(zones=st.dictionaries(st.text(max_size=12), st.fixed_dictionaries(
    {"type": st.none() | noise, "temp": st.none() | odd_numbers | noise}), max_size=4))  # fmt: skip
def test_thermal_zone_parser(zones: dict[str, dict[str, str | None]]) -> None:
    temps = returns_or_edgekd_error(thermal.zone_temperatures, zones)
    if temps is not None:
        returns_or_edgekd_error(thermal.soc_temperature, temps)


@SETTINGS
@given(text=st.one_of(mutated(recordings("pi/*pmic*.txt")), noise))
def test_pi5_pmic_parser(text: str) -> None:
    reading = returns_or_edgekd_error(parse_pmic_adc, text)
    if reading is not None:
        _ = reading.watts, reading.rails_without_current
    meter = Pi5PmicMeter(lambda argv: text)
    returns_or_edgekd_error(meter.available)
    returns_or_edgekd_error(meter.read_watts)


@SETTINGS
@given(files=st.dictionaries(st.sampled_from(["hwmon0/name", "hwmon1/name", "hwmon0/power1_input",
                                             "hwmon0/in1_input", "hwmon0/curr1_input", "hwmon1/power1_input"]),
                             st.sampled_from(["ina219", "ina260", "cpu_thermal"]) | odd_numbers | noise))  # fmt: skip
def test_hwmon_ina_reader(files: dict[str, str]) -> None:
    meter = HwmonInaMeter(lambda path: files.get(path.removeprefix("/sys/class/hwmon/")))
    returns_or_edgekd_error(meter.available)
    returns_or_edgekd_error(meter.read_watts)


@SETTINGS
@given(text=st.one_of(mutated(recordings("pi/usb_meter*.log")), noise))
def test_usb_meter_log_parser(text: str, tmp_path: Path) -> None:
    log = tmp_path / "meter.log"
    log.write_text(text, encoding="utf-8", errors="replace")
    returns_or_edgekd_error(read_power_log, log)
    returns_or_edgekd_error(window_from_log, log, 1764400000.0, 1764400001.0)


# --- Android battery (targets/energy/android_battery.py) -----------------------------------------


@SETTINGS
@given(values=st.fixed_dictionaries({name: st.none() | odd_numbers | noise | st.sampled_from(
    ["Discharging", "Charging", "Full", "1", "0"]) for name in (*BATTERY_FILES, *SUPPLY_FILES)}),
    allow_charging=st.booleans())  # fmt: skip
def test_android_battery_reader(values: dict[str, str | None], allow_charging: bool) -> None:
    meter = AndroidBatteryMeter(lambda: values, allow_charging=allow_charging)
    if returns_or_edgekd_error(meter.available) is None:
        returns_or_edgekd_error(meter.read_watts)


@pytest.mark.parametrize("reader", [dict, lambda: dict.fromkeys(BATTERY_FILES)])
def test_android_battery_without_files_is_unavailable(reader: Any) -> None:
    assert "no battery current_now" in (AndroidBatteryMeter(reader).available() or "")
