"""What a target adds to the bench config (its board profile's threads and pinning), and what the bench
config gives a target at construction (`target_options`: --allow-charging).

A Raspberry Pi's profile (targets/profiles/rpi5.toml) says how to run on it: `default_threads` and
`pin_cores`, capped at the cores the device reports. They apply only where the user did not choose: a value set in the recipe's [bench] section
or on the command line is in the config's `model_fields_set` and always wins. Which values came from
where is recorded in every result's env (`settings`), so nobody has to guess what a run used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekd.config.bench import BenchConfig
from edgekd.errors import UsageError
from edgekd.target_protocol import DeviceInfo, Target, TargetOptions


def target_options(config: BenchConfig) -> TargetOptions:
    """The settings a bench run gives each target when it is made (`make_target(..., options=...)`)."""
    return TargetOptions(allow_charging=bool(config.allow_charging))


def check_target_options(target: Target, config: BenchConfig) -> None:
    """A config that allows charging needs a target made with it (`target_options`): refused, not ignored."""
    if config.allow_charging and not target.options.allow_charging:
        raise UsageError(
            f"allow_charging is set for this bench, but target '{target.name}' was made without it",
            hint="make the target with edgekd.inventory.make_target(name, options="
            "edgekd.bench.target_settings.target_options(config))",
        )


@dataclass
class TargetSettings:
    """The effective config for one target and where its threads / pinning came from."""

    config: BenchConfig
    from_profile: dict[str, Any] = field(default_factory=dict)
    from_user: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def env(self) -> dict[str, Any]:
        return {
            "threads": self.config.threads,
            "pin_cores": self.config.pin_cores,
            "allow_charging": self.config.allow_charging,
            "from_profile": dict(self.from_profile),
            "set_by_user": list(self.from_user),
            "notes": list(self.notes),
        }


def apply_target_settings(target: Target, info: DeviceInfo, config: BenchConfig) -> TargetSettings:
    """The config to run with on `target`: profile defaults for what the user left unset."""
    chosen = config.model_fields_set
    settings = TargetSettings(config, from_user=[name for name in ("threads", "pin_cores") if name in chosen])
    profile = target.board_profile()
    if profile is None:
        return settings
    updates: dict[str, Any] = {}
    if "threads" not in chosen:
        threads = profile.default_threads
        if info.cores and threads > info.cores:  # more threads than cores only adds contention
            settings.notes.append(
                f"profile {profile.name} runs {threads} threads; the device has {info.cores} "
                f"cores, so {info.cores} threads were used"
            )
            threads = info.cores
        updates["threads"] = threads
    if "pin_cores" not in chosen and profile.pin_cores:
        cores = list(profile.pin_cores)
        if info.cores:
            present = [core for core in cores if core < info.cores]
            if present != cores:
                settings.notes.append(
                    f"profile {profile.name} pins to cores {cores}; the device has {info.cores}, so {present} were used"
                )
            cores = present
        if cores:
            updates["pin_cores"] = cores
    if updates:
        settings.config = config.model_copy(update=updates)
        settings.from_profile = {"profile": profile.name, **updates}
    return settings
