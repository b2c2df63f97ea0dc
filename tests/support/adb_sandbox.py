"""The file system and tools of the loopback Android device, sandboxed with `proot`.

Device paths are bound onto a temp directory, never onto the host's own `/data` or `/sys`:

    /data                              <- ROOT/data   (holds /data/local/tmp and Termux's prefix)
    /system                            <- ROOT/system (stand-ins for getprop, dumpsys, df, taskset)
    /sys/class/power_supply            <- ROOT/sys/power_supply     (copied from a recording)
    /sys/class/thermal                 <- ROOT/sys/thermal          (copied from a recording)
    /sys/devices/system/cpu/cpufreq    <- ROOT/sys/cpufreq          (copied from a recording)

The stand-in tools print what the real ones print on the recorded phone (toybox `df -k`, `getprop`,
`dumpsys battery` derived from the power_supply tree, a recorded `dumpsys thermalservice`). `taskset` logs
the mask it was asked for and runs the command unpinned: this machine does not have the phone's big cores.
"Termux python3" is a wrapper at /data/data/com.termux/files/usr/bin/python3 that runs the host's Python
(with numpy + ai_edge_litert) inside the sandbox.
"""

from __future__ import annotations

import posixpath
import shutil
import subprocess
import sys
import threading
from pathlib import Path

RECORDINGS = Path(__file__).parent / "recordings" / "android"
TERMUX_PREFIX = "/data/data/com.termux/files/usr"
DEFAULT_TOTAL_KB = 115_249_236  # /data of a 128 GB Pixel 6, as `df -k` reports it
DEFAULT_USED_KB = 41_872_112

GETPROP = """#!/bin/sh
# getprop stand-in: the recorded dump, or one value (empty line when unset, as on Android)
if [ $# -eq 0 ]; then cat /system/etc/getprop.txt; exit 0; fi
value=$(grep -F "[$1]: [" /system/etc/getprop.txt | head -n 1 | sed 's/^[^:]*: \\[//; s/\\]$//')
if [ -z "$value" ] && [ $# -ge 2 ]; then value=$2; fi
echo "$value"
"""

DF = """#!/bin/sh
# toybox `df -k PATH` stand-in for the /data partition; capacity comes from /system/etc/data_kb
read total base < /system/etc/data_kb
used=$(( base + $(du -sk /data 2>/dev/null | cut -f1) ))
[ $used -gt $total ] && used=$total
avail=$(( total - used ))
echo "Filesystem      1K-blocks     Used Available Use% Mounted on"
printf '%-15s %9d %8d %9d %3d%% %s\\n' /dev/block/dm-36 $total $used $avail $(( used * 100 / total )) /data
"""

TASKSET = """#!/bin/sh
# toybox taskset stand-in: record the mask, run unpinned (this host lacks the phone's cores)
if [ "$1" = "-p" ] || [ "$1" = "-a" ] || [ "$1" = "-ap" ]; then echo "pid $3's current affinity mask: ff"; exit 0; fi
mask=$1; shift
echo "$mask $*" >> /system/taskset.log
exec "$@"
"""

DUMPSYS = """#!/bin/sh
# dumpsys stand-in: battery state derived from the power_supply tree; thermalservice as recorded
ps=/sys/class/power_supply
case "$1" in
battery)
  online() { [ "$(cat $ps/$1/online 2>/dev/null)" = 1 ] && echo true || echo false; }
  case "$(cat $ps/battery/status)" in Charging) s=2;; Discharging) s=3;; "Not charging") s=4;; Full) s=5;; *) s=1;; esac
  echo "Current Battery Service state:"
  echo "  AC powered: $(online ac)"
  echo "  USB powered: $(online usb)"
  echo "  Wireless powered: $(online wireless)"
  echo "  Max charging current: 0"
  echo "  Max charging voltage: 0"
  echo "  Charge counter: $(cat $ps/battery/charge_counter)"
  echo "  status: $s"
  echo "  health: 2"
  echo "  present: true"
  echo "  level: $(cat $ps/battery/capacity)"
  echo "  scale: 100"
  echo "  voltage: $(( $(cat $ps/battery/voltage_now) / 1000 ))"
  echo "  temperature: $(cat $ps/battery/temp)"
  echo "  technology: $(cat $ps/battery/technology)"
  ;;
thermalservice) cat /system/etc/dumpsys_thermalservice.txt ;;
*) echo "Can't find service: $1"; exit 0 ;;
esac
"""


class DeviceSandbox:
    """A phone's file tree under `root`, with proot argv and path mapping for the adb device."""

    def __init__(self, root: Path, recording: str = "pixel6", *, python: str | None = sys.executable) -> None:
        if shutil.which("proot") is None:
            raise RuntimeError("proot is not installed (apt-get install proot)")
        self.root = root
        source = RECORDINGS / recording
        (root / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
        for name in ("power_supply", "thermal", "cpufreq"):
            shutil.copytree(source / "sys" / name, root / "sys" / name, symlinks=True, dirs_exist_ok=True)
        etc = root / "system" / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "getprop.txt", etc / "getprop.txt")
        shutil.copy(source / "dumpsys_thermalservice.txt", etc / "dumpsys_thermalservice.txt")
        self.set_capacity_kb(DEFAULT_TOTAL_KB, DEFAULT_USED_KB)
        tools = root / "system" / "bin"
        tools.mkdir(parents=True, exist_ok=True)
        for name, text in {"getprop": GETPROP, "df": DF, "taskset": TASKSET, "dumpsys": DUMPSYS}.items():
            (tools / name).write_text(text)
            (tools / name).chmod(0o755)
        if python:
            termux_bin = root / "data" / "data" / "com.termux" / "files" / "usr" / "bin"
            termux_bin.mkdir(parents=True, exist_ok=True)
            (termux_bin / "python3").write_text(f'#!/bin/sh\nexec {python} "$@"\n')
            (termux_bin / "python3").chmod(0o755)
        self.binds = {
            "/data": root / "data",
            "/system": root / "system",
            "/sys/class/power_supply": root / "sys" / "power_supply",
            "/sys/class/thermal": root / "sys" / "thermal",
            "/sys/devices/system/cpu/cpufreq": root / "sys" / "cpufreq",
        }

    # -- knobs for tests
    def set_capacity_kb(self, total_kb: int, used_kb: int) -> None:
        """Size of /data: `df` and sync SEND both honour it (used grows with what is pushed)."""
        (self.root / "system" / "etc" / "data_kb").write_text(f"{total_kb} {used_kb}\n")

    def set_power_source(self, *, usb: bool = False, ac: bool = False) -> None:
        supply = self.root / "sys" / "power_supply"
        (supply / "usb" / "online").write_text("1\n" if usb else "0\n")
        (supply / "ac" / "online").write_text("1\n" if ac else "0\n")
        (supply / "battery" / "status").write_text("Charging\n" if usb or ac else "Discharging\n")

    def set_thermal_status(self, status: int) -> None:
        path = self.root / "system" / "etc" / "dumpsys_thermalservice.txt"
        lines = [
            f"Thermal Status: {status}" if line.startswith("Thermal Status:") else line
            for line in path.read_text().splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")

    def set_battery_draw(self, *, idle_ma: float, load_ma: float, busy_marker: str) -> None:
        """A battery that drains `load_ma` more while a command containing `busy_marker` runs (Pixel units:
        µA, negative while discharging). The device calls `command_started/finished` around every command."""
        self._draw = (idle_ma, load_ma, busy_marker)
        self._busy = 0
        self._draw_lock = threading.Lock()
        self._write_current(idle_ma)

    def command_started(self, command: str) -> None:
        self._count_busy(command, +1)

    def command_finished(self, command: str) -> None:
        self._count_busy(command, -1)

    def _count_busy(self, command: str, step: int) -> None:
        draw = getattr(self, "_draw", None)
        if draw is None or draw[2] not in command:
            return
        with self._draw_lock:
            self._busy += step
            self._write_current(draw[0] + (draw[1] if self._busy > 0 else 0.0))

    def _write_current(self, milliamps: float) -> None:
        path = self.root / "sys" / "power_supply" / "battery" / "current_now"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{-round(milliamps * 1000)}\n")
        tmp.replace(path)  # atomic: a concurrent `cat` never sees a half-written value

    def taskset_log(self) -> list[str]:
        log = self.root / "system" / "taskset.log"
        return log.read_text().splitlines() if log.exists() else []

    # -- used by the device
    def host_path(self, device_path: str) -> Path | None:
        """Where a device path lives on this host, or None when it is outside every bind."""
        path = posixpath.normpath("/" + device_path.lstrip("/"))
        for prefix in sorted(self.binds, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "/"):
                return self.binds[prefix] / path[len(prefix) :].lstrip("/")
        return None

    def writable(self, device_path: str) -> bool:
        """Only /data is writable for the shell user; /system and /sys are read-only, as on a phone."""
        path = posixpath.normpath("/" + device_path.lstrip("/"))
        return path.startswith("/data/")

    def free_bytes(self) -> int:
        total, base = (int(v) for v in (self.root / "system" / "etc" / "data_kb").read_text().split())
        used = sum(p.stat().st_size for p in (self.root / "data").rglob("*") if p.is_file()) // 1024
        return max(0, total - base - used) * 1024

    def shell_argv(self, command: str) -> list[str]:
        argv = ["proot"]
        for device_path, host in self.binds.items():
            argv += ["-b", f"{host}:{device_path}"]
        argv += ["-w", "/", "/bin/sh"]
        return argv + (["-c", command] if command else ["-i"])

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/system/bin:/usr/bin:/bin",
            "HOME": "/",
            "ANDROID_DATA": "/data",
            "ANDROID_ROOT": "/system",
            "TMPDIR": "/data/local/tmp",
            "PROOT_NO_SECCOMP": "1",
            "LANG": "C.UTF-8",
        }

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run a command directly in the sandbox (test setup, not through adb)."""
        return subprocess.run(self.shell_argv(command), env=self.env(), capture_output=True, text=True, check=False)
