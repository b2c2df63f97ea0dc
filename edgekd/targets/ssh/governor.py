"""Hold a Pi's cpufreq governor at `performance` during a benchmark, over SSH, and put it back afterwards.

Raspberry Pi OS ships with `ondemand`, which ramps the clock up only after load appears: the first runs of
a benchmark are slower than the rest. Writing scaling_governor needs root: the target uses `sudo -n`
(Raspberry Pi OS's default user may sudo without a password) and reports, without failing, when it cannot.
Same interface as edgekd.bench.noise.GovernorControl (hold/restore), which the orchestrator calls.
"""

from __future__ import annotations

import logging
import shlex
from typing import TYPE_CHECKING

from edgekd.errors import TargetError

if TYPE_CHECKING:
    from edgekd.targets.ssh.target import SshTarget

log = logging.getLogger(__name__)
GOVERNOR_GLOB = "cpu[0-9]*/cpufreq/scaling_governor"


class RemoteGovernorControl:
    """cpufreq governors of an SSH target under `root` (normally /sys/devices/system/cpu)."""

    def __init__(self, target: SshTarget, root: str = "/sys/devices/system/cpu", sudo: str = "sudo -n") -> None:
        self.target = target
        self.root = root.rstrip("/")
        self.sudo = shlex.split(sudo)
        self.saved: dict[str, str] = {}  # file -> governor before hold()

    def read(self) -> dict[str, str]:
        """governor file -> governor; empty where cpufreq is not exposed (emulators, containers)."""
        pattern = f"{shlex.quote(self.root)}/{GOVERNOR_GLOB}"
        done = self.target.run(
            ["sh", "-c", f'for f in {pattern}; do [ -f "$f" ] && echo "$f $(cat "$f")"; done'], timeout=30
        )
        governors = {}
        for line in done.stdout.splitlines():
            path, _, governor = line.partition(" ")
            if governor:
                governors[path] = governor.strip()
        return governors

    def hold(self, governor: str = "performance") -> str | None:
        """Set every CPU to `governor`; None on success, else why not (the benchmark goes on regardless)."""
        try:
            current = self.read()
        except TargetError as exc:
            return f"cannot read the governors: {exc.message}; left as is"
        if not current:
            return f"no cpufreq governors under {self.root} on {self.target.name}: left as is"
        changing = {path: old for path, old in current.items() if old != governor}
        failure = self._write(dict.fromkeys(changing, governor)) if changing else None
        if failure is not None:
            return (
                f"cannot set the {governor} governor on {self.target.name} ({failure}); left as is. "
                f"Allow `sudo -n` (a NOPASSWD sudoers rule) or run: echo {governor} | sudo tee {self.root}/"
                f"cpu*/cpufreq/scaling_governor"
            )
        self.saved.update(changing)
        return None

    def restore(self) -> None:
        """Put back what hold() changed. Never raises: a dropped connection is logged, not re-raised."""
        if not self.saved:
            return
        saved, self.saved = self.saved, {}
        try:
            failure = self._write(saved)
            if failure is not None:
                log.warning("%s: could not restore the cpufreq governors %s: %s", self.target.name, saved, failure)
        except TargetError as exc:
            log.warning("%s: governors not restored (%s): %s", self.target.name, exc.message, saved)

    def _write(self, values: dict[str, str]) -> str | None:
        """None when every file was written, else what went wrong (stderr's last line)."""
        script = " && ".join(f"echo {shlex.quote(value)} > {shlex.quote(path)}" for path, value in values.items())
        done = self.target.run([*self.sudo, "sh", "-c", script], timeout=30)
        if done.returncode == 0:
            return None
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
