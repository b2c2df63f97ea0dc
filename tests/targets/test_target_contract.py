"""Every registered target kind meets the whole Target protocol, `identity()` says where a run happens without
connecting, and meter names come from the registry alone (tests that need no device: no sshd, no phone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd import registry
from edgekd.bench.orchestrate import bench_artifacts
from edgekd.config.bench import BenchConfig
from edgekd.energy_protocol import EnergyMeter
from edgekd.errors import RecipeError, TargetError, UsageError
from edgekd.inventory import make_target
from edgekd.target_protocol import Target, TargetOptions
from edgekd.targets.energy import MeterSource, build_meter, meter_class, meter_names
from edgekd.targets.local import LocalTarget
from edgekd.targets.ssh.entry import load_profile, profile_names
from edgekd.targets.ssh.health import AUTO_WITHOUT_PROFILE
from tests.support.sshd import keygen

ENTRIES = {"local": {}, "ssh": {"host": "192.0.2.7", "port": 2222, "user": "pi"}, "adb": {"serial": "R58M1234"}}


def _fingerprint(public_key: Path) -> str:
    done = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True)
    return done.stdout.split()[1]  # "256 SHA256:... comment (ED25519)"


@pytest.mark.parametrize("kind", sorted(registry.TARGET_KINDS))
def test_every_target_kind_meets_the_protocol_without_connecting(kind: str, tmp_path: Path) -> None:
    cls = registry.load(registry.TARGET_KINDS, kind, "target kind")
    target = cls.from_entry(f"my-{kind}", ENTRIES[kind], tmp_path, TargetOptions(allow_charging=True))
    assert isinstance(target, Target) and target.kind == kind and target.options.allow_charging
    identity = target.identity()
    assert identity["kind"] == kind and all(isinstance(v, str) for v in identity.values())
    assert target.identity() == identity  # stable, and nothing was connected for it
    assert getattr(target, "workdir", None) is None
    for capability in (target.governor_control, target.board_profile, target.host_keys, target.op_profiler):
        capability()  # declared on every kind: None or the capability, never an AttributeError


def test_ssh_identity_is_the_pinned_host_key_and_the_entry(tmp_path: Path) -> None:
    key = keygen(tmp_path / "host_key", "edgekd-identity")
    other = keygen(tmp_path / "other_key", "edgekd-identity-2")
    known_hosts = tmp_path / "known_hosts"
    words = Path(f"{key}.pub").read_text().split()[:2]
    known_hosts.write_text(f"[192.0.2.7]:2222 {' '.join(words)}\n")
    entry = {**ENTRIES["ssh"], "known_hosts": str(known_hosts)}
    identity = registry.load(registry.TARGET_KINDS, "ssh", "").from_entry("pi", entry, tmp_path).identity()
    assert identity["host_key"] == _fingerprint(Path(f"{key}.pub"))
    assert (identity["host"], identity["port"], identity["user"]) == ("192.0.2.7", "2222", "pi")
    # The device was reinstalled (or the name points at another board): a different key, a different identity.
    known_hosts.write_text(f"[192.0.2.7]:2222 {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    again = registry.load(registry.TARGET_KINDS, "ssh", "").from_entry("pi", entry, tmp_path).identity()
    assert again["host_key"] == _fingerprint(Path(f"{other}.pub")) != identity["host_key"]
    unpinned = (
        registry.load(registry.TARGET_KINDS, "ssh", "").from_entry("pi", {**entry, "port": 2200}, tmp_path).identity()
    )
    assert unpinned["host_key"] == "" and unpinned["port"] == "2200"


def test_adb_identity_is_the_serial_and_its_transport(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adb = registry.load(registry.TARGET_KINDS, "adb", "")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    assert adb.from_entry("p", {"serial": "R58M1234"}, tmp_path).identity()["transport"] == "usb"
    wifi = adb.from_entry("p", {"serial": "192.168.1.20:5555"}, tmp_path).identity()
    assert (wifi["serial"], wifi["transport"]) == ("192.168.1.20:5555", "tcp")
    monkeypatch.setenv("ANDROID_SERIAL", "emulator-5554")
    assert adb.from_entry("p", {}, tmp_path).identity()["serial"] == "emulator-5554"
    tool = tmp_path / "benchmark_model"
    tool.write_bytes(b"build 1")
    entry = {"serial": "R58M1234", "mode": "benchmark_model", "benchmark_model": "benchmark_model"}
    first = adb.from_entry("p", entry, tmp_path).identity()
    tool.write_bytes(b"build 2")  # another build of the tool gives other figures
    assert adb.from_entry("p", entry, tmp_path).identity()["benchmark_model_sha256"] != first["benchmark_model_sha256"]


def test_local_identity_is_this_machine(tmp_path: Path) -> None:
    identity = LocalTarget(workdir_parent=tmp_path).identity()
    machine_id = Path("/etc/machine-id")
    expected = machine_id if machine_id.is_file() else Path("/proc/sys/kernel/random/boot_id")
    assert identity["machine_id"] == f"{expected}:{expected.read_text().strip()}" and identity["cpu_model"]
    assert LocalTarget(python="/opt/other/python3").identity()["python"] == "/opt/other/python3"


def test_make_target_passes_the_runs_settings_and_the_bench_refuses_a_mismatch(tmp_path: Path) -> None:
    inventory = tmp_path / "targets.toml"
    inventory.write_text('[targets.box]\nkind = "local"\n')
    made = make_target("box", inventory, options=TargetOptions(allow_charging=True))
    assert made.options.allow_charging and made.identity()["kind"] == "local"
    with pytest.raises(UsageError, match="target 'box' was made without it"):
        bench_artifacts(make_target("box", inventory), [], BenchConfig(allow_charging=True))


def test_every_registered_meter_names_itself_and_its_target_kinds() -> None:
    for name in registry.ENERGY_METERS:
        cls = meter_class(name)
        assert cls.name == name and cls.kinds and set(cls.kinds) <= set(registry.TARGET_KINDS)
    assert meter_names("local") == ["rapl", "perf"] and meter_names("adb") == ["android-battery"]
    assert set(meter_names("ssh")) == {"pi5-pmic", "ina", "usb-meter-csv"}
    for profile in profile_names():  # the board profiles name registered meters only
        assert set(load_profile(profile).power_methods) <= set(meter_names("ssh"))
    assert set(AUTO_WITHOUT_PROFILE) <= set(meter_names("ssh"))  # power = "auto" on a board without a profile


def test_meters_built_from_a_source_meet_the_protocol(tmp_path: Path) -> None:
    source = MeterSource(
        "ssh",
        read_text=lambda _path: None,
        command_output=lambda _argv: None,
        options={"usb_meter_csv": tmp_path / "log.csv", "hwmon_root": "/sys/class/hwmon"},
    )
    for name in meter_names("ssh"):
        meter = build_meter(name, source)
        assert isinstance(meter, EnergyMeter) and meter.name == name
        meter.close()  # declared by every meter; nothing was started, nothing to release
    assert build_meter("usb-meter-csv", MeterSource("ssh")) is None  # no log path in the entry: no meter


def test_a_meter_name_outside_the_registry_is_refused_with_the_close_one(tmp_path: Path) -> None:
    ssh = registry.load(registry.TARGET_KINDS, "ssh", "")
    with pytest.raises(RecipeError) as caught:
        ssh.from_entry("pi", {"host": "pi.local", "power": "usb-meter"}, tmp_path)
    assert "targets.pi.power: unknown energy meter 'usb-meter'" in caught.value.message
    assert "did you mean 'usb-meter-csv'?" in (caught.value.hint or "")
    with pytest.raises(RecipeError, match="energy meter 'rapl' does not work on ssh targets"):
        ssh.from_entry("pi", {"host": "pi.local", "power": "rapl"}, tmp_path)
    with pytest.raises(TargetError, match="energy meter 'android-battery' does not work on local targets"):
        LocalTarget.from_entry("box", {"energy": ["android-battery"]}, tmp_path)


def test_trust_on_a_target_without_host_keys_is_a_usage_error(tmp_path: Path) -> None:
    inventory = tmp_path / "targets.toml"
    inventory.write_text('[targets.box]\nkind = "local"\n')
    edgekd = Path(sys.executable).parent / "edgekd"
    done = subprocess.run(
        [str(edgekd), "targets", "trust", "box", "-i", str(inventory), "--yes"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "EDGEKD_HISTORY": str(tmp_path / "history.sqlite")},
    )
    assert done.returncode == 2 and "usage error: target 'box' is not an SSH target" in done.stderr, done.stderr
    assert 'only kind = "ssh" targets have host keys' in done.stderr and "Traceback" not in done.stderr


def test_a_bench_patches_nothing_onto_the_target(tmp_path: Path) -> None:
    """Settings are fixed at construction: after a bench (allow_charging, a profile's threads and pinning
    applied) the target has the same attributes and settings it had before; only session state came and went."""
    import dataclasses

    from edgekd.artifacts import describe_file
    from edgekd.target_protocol import BoardProfile
    from tests.support.bench_models import make_matmul_onnx

    profile = BoardProfile("test board", default_threads=1, pin_cores=(0,))
    target = LocalTarget(
        "box", workdir_parent=tmp_path / "work", sysfs=tmp_path / "sys",
        options=TargetOptions(allow_charging=True), profile=profile,
    )  # fmt: skip
    before = dict(vars(target))
    model = describe_file(make_matmul_onnx(tmp_path / "m.onnx", layers=1, size=8))
    config = BenchConfig(runs=5, warmup=1, repeats=1, energy=False, allow_charging=True)
    [result] = bench_artifacts(target, [model], config)
    assert result.env["settings"]["from_profile"] == {"profile": "test board", "threads": 1, "pin_cores": [0]}
    assert dict(vars(target)) == before  # the work dir was made and removed; nothing else changed
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.options.allow_charging = False  # type: ignore[misc]
