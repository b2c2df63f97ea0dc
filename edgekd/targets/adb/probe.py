"""What an Android phone is and how it is doing, from one `adb shell` script: props, CPU clusters,
thermal zones and status, free space in /data/local/tmp, battery. Parsing is separate from the transport
so it is tested on recorded outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgekd.targets.thermal import zone_temperatures

#: Printed sections start with "@@name"; everything device-side is toybox/POSIX sh. sysfs files are read
#: by one `grep -H` (path:value lines): a probe is a handful of processes, not one per file.
CPUFREQ = "/sys/devices/system/cpu/cpufreq/policy*"
PROBE_SCRIPT = f"""
echo @@props; getprop
echo @@files
grep -H . {CPUFREQ}/related_cpus {CPUFREQ}/cpuinfo_max_freq {CPUFREQ}/scaling_governor {CPUFREQ}/scaling_cur_freq \\
  /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp 2>/dev/null
echo @@thermalservice; dumpsys thermalservice 2>/dev/null | grep -E '^Thermal Status:'
echo @@df; df -k /data/local/tmp 2>&1
echo @@battery; dumpsys battery 2>/dev/null
"""
THERMAL_STATUS = ["none", "light", "moderate", "severe", "critical", "emergency", "shutdown"]
ABI_ARCH = {"arm64-v8a": "aarch64", "armeabi-v7a": "armv7l", "x86_64": "x86_64", "x86": "i686"}


@dataclass
class Cluster:
    """One cpufreq policy: the cores that share a clock."""

    policy: str
    cpus: list[int]
    max_khz: int | None
    governor: str | None
    cur_khz: int | None


@dataclass
class PhoneState:
    props: dict[str, str] = field(default_factory=dict)
    clusters: list[Cluster] = field(default_factory=list)
    temperatures_c: dict[str, float] = field(default_factory=dict)
    thermal_status: int | None = None
    free_kb: int | None = None
    battery: dict[str, str] = field(default_factory=dict)

    @property
    def abi(self) -> str | None:
        return self.props.get("ro.product.cpu.abi")

    @property
    def sdk(self) -> int | None:
        value = self.props.get("ro.build.version.sdk", "")
        return int(value) if value.isdigit() else None

    @property
    def model(self) -> str:
        return " ".join(x for x in (self.props.get("ro.product.manufacturer"), self.props.get("ro.product.model")) if x)

    @property
    def cores(self) -> int | None:
        cpus = {cpu for cluster in self.clusters for cpu in cluster.cpus}
        return len(cpus) or None

    def big_cores(self) -> list[int]:
        """The cores of the fastest cluster (highest cpuinfo_max_freq)."""
        known = [c for c in self.clusters if c.max_khz]
        if not known:
            return []
        return sorted(max(known, key=lambda c: c.max_khz or 0).cpus)

    def thermal_status_name(self) -> str | None:
        if self.thermal_status is None:
            return None
        index = self.thermal_status
        return THERMAL_STATUS[index] if 0 <= index < len(THERMAL_STATUS) else str(index)

    def on_power(self) -> list[str]:
        return [source for source in ("AC", "USB", "Wireless") if self.battery.get(f"{source} powered") == "true"]


def cpu_mask(cores: list[int]) -> str:
    """Cores -> taskset's hex mask: [6, 7] -> "c0"."""
    return format(sum(1 << core for core in cores), "x")


def mask_cores(mask: str) -> list[int]:
    value = int(mask, 16)
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


def parse_cpu_list(text: str) -> list[int]:
    """`related_cpus` ("6 7") or a range list ("0-3")."""
    cpus: list[int] = []
    for part in re.split(r"[\s,]+", text.strip()):
        if "-" in part:
            low, high = part.split("-", 1)
            cpus.extend(range(int(low), int(high) + 1))
        elif part.isdigit():
            cpus.append(int(part))
    return cpus


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().lstrip("-").isdigit() else None


def parse_df_free_kb(lines: list[str]) -> int | None:
    """Available KiB from `df -k PATH` (toybox or GNU): the last row's fourth column."""
    rows = [line.split() for line in lines if line.strip() and not line.startswith("Filesystem")]
    if not rows or len(rows[-1]) < 4:
        return None
    return _int(rows[-1][-3])


def parse_probe(text: str) -> PhoneState:
    state = PhoneState()
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        else:
            sections.setdefault(current, []).append(line)
    for line in sections.get("props", []):
        match = re.match(r"\[(.+?)\]: \[(.*)\]$", line)
        if match:
            state.props[match.group(1)] = match.group(2)
    policies: dict[str, dict[str, str]] = {}
    zones: dict[str, dict[str, str | None]] = {}
    for line in sections.get("files", []):
        path, sep, value = line.partition(":")
        parts = path.split("/")
        if not sep or len(parts) < 3:
            continue
        folder, name = parts[-2], parts[-1]
        if folder.startswith("policy"):
            policies.setdefault(folder, {})[name] = value.strip()
        elif folder.startswith("thermal_zone"):
            zones.setdefault(folder, {})[name] = value.strip()
    for policy, values in policies.items():
        state.clusters.append(
            Cluster(
                policy,
                parse_cpu_list(values.get("related_cpus", "")),
                _int(values.get("cpuinfo_max_freq")),
                values.get("scaling_governor") or None,
                _int(values.get("scaling_cur_freq")),
            )
        )
    state.clusters.sort(key=lambda c: c.cpus[:1] or [0])
    state.temperatures_c = zone_temperatures(zones)
    status = re.search(r"Thermal Status:\s*(\d+)", "\n".join(sections.get("thermalservice", [])))
    state.thermal_status = int(status.group(1)) if status else None
    state.free_kb = parse_df_free_kb(sections.get("df", []))
    for line in sections.get("battery", []):
        key, sep, value = line.strip().partition(": ")
        if sep:
            state.battery[key] = value.strip()
    return state
