"""What a `kind = "ssh"` entry of targets.toml may say, and the Raspberry Pi profiles it can name.

```toml
[targets.pi5]
kind = "ssh"
host = "pi5.local"        # or a Host alias from ~/.ssh/config (its HostName, Port, User, IdentityFile apply)
user = "pi"
key = "~/.ssh/id_ed25519" # relative paths are relative to targets.toml
profile = "rpi5"          # targets/profiles/rpi5.toml: cores, default threads, pinning, power methods
python = "python3"        # how to start Python on the Pi (a venv's python works too)
workdir = "/tmp"          # a fresh `mktemp -d` directory is made under it for each session
benchmark_model = "tools/linux_aarch64_benchmark_model"  # optional: per-op profiles of TFLite models
```

`power` and a profile's `power_methods` name meters of edgekd.registry.ENERGY_METERS that work over SSH.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from edgekd.config.base import StrictModel, parse_target_entry
from edgekd.errors import RecipeError, TargetError
from edgekd.registry import unknown_name
from edgekd.targets.energy import check_meter

#: `power` values beside the meter names: the profile's first method that works, or no energy at all.
POWER_CHOICES = ("auto", "none")


class SshEntry(StrictModel):
    """One Raspberry Pi (or any Linux board) reached over SSH."""

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)  # None: ~/.ssh/config, else 22
    user: str | None = None  # None: ~/.ssh/config, else the local user name
    key: Path | None = None  # None: ~/.ssh/config, the agent and the default identities
    profile: str | None = None  # "rpi4" | "rpi5" (targets/profiles/*.toml)
    python: str = "python3"
    workdir: str = "/tmp"
    known_hosts: Path | None = None  # None: ~/.ssh/known_hosts (and ~/.ssh/config's UserKnownHostsFile)
    connect_timeout: float = Field(10.0, gt=0)  # seconds per attempt
    retries: int = Field(2, ge=0)  # extra connection attempts, with backoff; commands are never retried
    power: str = "auto"  # a meter name (registry.ENERGY_METERS), "auto" (the profile's first that works) or "none"
    hwmon_root: str = "/sys/class/hwmon"  # where an INA219/INA260 hwmon device appears
    usb_meter_csv: Path | None = None  # a USB meter's log, read after each window (power = "usb-meter-csv")
    sudo: str = "sudo -n"  # prefix for writing the cpufreq governor; "" when logged in as root
    cpufreq_root: str = "/sys/devices/system/cpu"
    benchmark_model: Path | None = None  # TFLite's benchmark_model built for the board: per-op profiles


class PiProfile(StrictModel):
    """A board family: what to expect and how to measure on it (targets/profiles/NAME.toml)."""

    name: str
    soc: str
    cpu: str
    cores: int = Field(ge=1)
    default_threads: int = Field(ge=1)
    pin_cores: list[int]  # cores the runner is pinned to (taskset/sched_setaffinity)
    max_freq_mhz: int
    soft_temp_limit_c: float  # firmware starts to throttle here
    power_methods: list[str]  # meter names (registry.ENERGY_METERS), tried in this order
    notes: str = ""

    @property
    def pin_mask(self) -> str:
        """The pinning cores as a hex CPU mask, e.g. 0xf for cores 0-3 (for taskset)."""
        return hex(sum(1 << core for core in self.pin_cores))


def profile_names() -> list[str]:
    folder = resources.files("edgekd.targets.profiles")
    return sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))


def load_profile(name: str) -> PiProfile:
    """Read targets/profiles/NAME.toml; an unknown name gets a close-match suggestion."""
    names = profile_names()
    if name not in names:
        raise unknown_name("profile", name, names, TargetError)
    text = resources.files("edgekd.targets.profiles").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    try:
        profile = PiProfile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise TargetError(f"profile {name} is broken: {exc}") from None
    for method in profile.power_methods:
        check_meter(method, "ssh", f"profile {name}")
    return profile


def parse_entry(name: str, entry: dict[str, Any], base: Path) -> SshEntry:
    """Validate a targets.toml entry; relative key/known_hosts/CSV paths are taken relative to `base`."""
    parsed = parse_target_entry(
        SshEntry, "ssh", name, entry, base, ("key", "known_hosts", "usb_meter_csv", "benchmark_model")
    )
    if parsed.profile is not None:
        load_profile(parsed.profile)  # fail early on a misspelt profile
    if parsed.power not in POWER_CHOICES:
        check_meter(parsed.power, "ssh", f"targets.{name}.power", RecipeError)
    return parsed
