"""The runner sends thermal zones raw; the host decodes them with the one decoder every target uses."""

from __future__ import annotations

import json

from edgekd.bench.runner_cli import parse_runner_output
from edgekd.target_protocol import Completed


def test_runner_zones_become_degrees_by_the_shared_decoder() -> None:
    zones = {
        "thermal_zone0": {"type": "cpu-thermal", "temp": "47250"},
        "thermal_zone1": {"type": "cpu-thermal", "temp": "51000"},  # a second zone of one type keeps its name
        "thermal_zone2": {"type": "gpu", "temp": None},  # unreadable (-ENODATA): left out
        "thermal_zone3": {"type": "junk", "temp": "9" * 40},  # garbled: left out, no OverflowError
    }
    document = {
        "schema": "edgekd.run/1",
        "env": {"thermal_zones": zones},
        "windows": [
            {"start": 0, "end": 1, "thermal_zones": {"thermal_zone0": {"type": "cpu-thermal", "temp": "60000"}}}
        ],
    }
    completed = Completed(argv=["python3"], returncode=0, stdout=json.dumps(document) + "\n", stderr="", seconds=0.1)
    parsed = parse_runner_output(completed, "pi")
    assert parsed["env"]["temps_c"] == {"cpu-thermal": 47.25, "cpu-thermal:thermal_zone1": 51.0}
    assert parsed["windows"][0]["temps_c"] == {"cpu-thermal": 60.0}
    assert "thermal_zones" not in parsed["env"] and "thermal_zones" not in parsed["windows"][0]
