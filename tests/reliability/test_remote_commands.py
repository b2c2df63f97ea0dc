"""Hostile file names through the SSH and adb targets' command construction, executed by a real `sh`.

The transport is the only stand-in: where SshTarget would send a command line over SSH (`_exec`) and AdbTarget
would hand one to `adb shell` (`_adb("shell", ...)`), this machine's /bin/sh runs it in a sandbox folder
instead, which is what sshd and adbd do with it on the device (`$SHELL -c` / `sh -c`). Everything above
the transport — mktemp of the work dir, push with its sha256 check, run in the work dir, read_text, cleanup —
is the product's own code. Each property: the file with the hostile name is what is touched, nothing else
appears anywhere in the sandbox, and cleanup leaves no work dir behind.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekd.targets.adb.probe import PhoneState
from edgekd.targets.adb.target import AdbTarget
from edgekd.targets.ssh.target import SshTarget

CANARY = "INJECTED"
NASTY = [
    "a b", "it's", 'say "hi"', "a;touch INJECTED", "$(touch INJECTED)", "`touch INJECTED`", "a\ntouch INJECTED",
    "-rf", "--help", "-", "*", "?", "~", "~root", "$HOME", "${IFS}", "a|touch INJECTED", "a&&touch INJECTED",
    "a>INJECTED", "<x", "\\", "'$(touch INJECTED)'", "\"; touch INJECTED; \"", "#x", "!x", "a\tb", " lead",
]  # fmt: skip
HOSTILE_CHARS = " '\"`;$()&|<>*?~\\\n\t#!{}-=%^[]" + "abcXYZ019." + "é✓"

hostile_names = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet=HOSTILE_CHARS, min_size=1, max_size=24),
).filter(lambda name: name not in (".", "..") and name != CANARY and len(name.encode()) < 200)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def local_sh(command: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """What the device does with a command line: hand it to `sh -c` (HOME is the sandbox)."""
    return subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, cwd=cwd, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)}, check=False)  # fmt: skip


def everything_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def ssh_target(sandbox: Path, workdir_parent: Path) -> SshTarget:
    target = SshTarget.from_entry("pi", {"host": "192.0.2.1", "workdir": str(workdir_parent)}, sandbox)

    def exec_locally(command: str, timeout: float, what: str, stdin: bytes | None = None) -> SimpleNamespace:
        done = local_sh(command, sandbox, stdin)
        return SimpleNamespace(stdout=done.stdout, stderr=done.stderr, exit_status=done.returncode, exit_signal=None)

    target._exec = exec_locally  # type: ignore[method-assign]
    target._conn = object()  # type: ignore[assignment]  # "connected": cleanup() talks to the device
    target.workdir = target._make_workdir()
    return target


def adb_target(sandbox: Path, workdir_parent: Path) -> AdbTarget:
    workdir_parent.mkdir(parents=True, exist_ok=True)  # a phone's /data/local/tmp exists; adb does not create it
    target = AdbTarget.from_entry("phone", {"serial": "emulator-5554", "workdir": str(workdir_parent)}, sandbox)

    def adb_locally(*args: str, timeout: float = 60.0, serial: bool = True) -> subprocess.CompletedProcess[str]:
        if args[0] == "shell":
            assert len(args) == 2, f"adb shell takes one command line, got {args}"  # adb would join the words
            done = local_sh(args[1], sandbox)
            return subprocess.CompletedProcess(args, done.returncode, done.stdout.decode(), done.stderr.decode())
        if args[0] in ("push", "pull"):  # the sync protocol: paths as data, never through a shell
            shutil.copyfile(args[1], args[2])
            return subprocess.CompletedProcess(args, 0, "", "")
        if args[0] == "get-state":
            return subprocess.CompletedProcess(args, 0, "device\n", "")
        raise AssertionError(f"unexpected adb call {args}")

    target._adb = adb_locally  # type: ignore[method-assign]
    target.state = PhoneState(free_kb=10**9)  # no clusters known: runs are not pinned
    target.connect()
    return target


def exercise(target: Any, name: str, tmp: Path) -> None:
    """Push a file called `name`, make a folder `name`.d on the device, read and pull it back, then clean up."""
    sandbox = tmp / "sandbox"
    parent = Path(target.workdir).parent
    local = tmp / "local" / name
    local.write_bytes(b"model bytes\n")
    workdir = Path(target.workdir)
    assert workdir.parent == parent and workdir.is_dir()

    remote = target.push(local)
    assert Path(remote).parent == workdir and Path(remote).name.endswith(name)
    assert Path(remote).read_bytes() == b"model bytes\n"

    folder = name + ".d"  # beside the pushed file, which adb names exactly `name`
    done = target.run(["mkdir", "--", folder], timeout=30)  # (touch would take "-" for stdout)
    assert done.returncode == 0, done.stderr
    assert (workdir / folder).is_dir()
    listed = {p.name for p in workdir.iterdir() if not p.name.startswith(".pid.")}
    assert listed == {folder, Path(remote).name}

    echoed = target.run(["printf", "%s", name], timeout=30)
    assert echoed.stdout == name
    target.pull(remote, tmp / "pulled")
    assert (tmp / "pulled").read_bytes() == b"model bytes\n"

    target.cleanup()
    assert not workdir.exists()
    assert everything_under(sandbox) == {parent.name}  # the (emptied) workdir setting, nothing else
    assert not any(Path(p).name == CANARY for p in everything_under(tmp))


def fresh(tmp_path: Path, name: str) -> tuple[Path, Path]:
    for sub in ("sandbox", "local"):
        shutil.rmtree(tmp_path / sub, ignore_errors=True)
        (tmp_path / sub).mkdir()
    (tmp_path / "pulled").unlink(missing_ok=True)
    parent = tmp_path / "sandbox" / f"work {name}"  # the user's workdir setting may be hostile too
    return tmp_path / "sandbox", parent


@SETTINGS
@given(name=hostile_names)
def test_ssh_target_touches_only_the_named_file(name: str, tmp_path: Path) -> None:
    sandbox, parent = fresh(tmp_path, name)
    exercise(ssh_target(sandbox, parent), name, tmp_path)


ESCAPED_BY_SHA256SUM = ("\\", "\n")  # GNU sha256sum escapes such names and prefixes its line with a backslash


@SETTINGS
@given(name=hostile_names.filter(lambda name: not any(c in name for c in ESCAPED_BY_SHA256SUM)))
def test_adb_target_touches_only_the_named_file(name: str, tmp_path: Path) -> None:
    sandbox, parent = fresh(tmp_path, name)
    exercise(adb_target(sandbox, parent), name, tmp_path)


@pytest.mark.parametrize("name", ["back\\slash.tflite", "new\nline.tflite"])
def test_adb_push_of_a_name_sha256sum_escapes(name: str, tmp_path: Path) -> None:
    sandbox, parent = fresh(tmp_path, name)
    exercise(adb_target(sandbox, parent), name, tmp_path)


@SETTINGS
@given(argv=st.lists(hostile_names, min_size=1, max_size=4))
def test_adb_run_command_line_splits_back_into_the_argv(argv: list[str], tmp_path: Path) -> None:
    """The line adb hands to the phone's shell is `cd WORKDIR && sh -c 'echo $$ > PIDFILE && exec ARGV...'`
    (the pid file lets cleanup stop it); two POSIX splits give back the argv."""
    sandbox, parent = fresh(tmp_path, "x")
    target = adb_target(sandbox, parent)
    sent: list[str] = []
    target._shell = lambda command, timeout=60.0, label=None: (
        sent.append(command),
        subprocess.CompletedProcess([], 0, "", ""),
    )[1]  # type: ignore[method-assign]
    target.run(["printf", "%s\\n", *argv], timeout=30)
    words = shlex.split(sent[0])
    assert words[:5] == ["cd", target.workdir, "&&", "sh", "-c"] and len(words) == 6
    inner = shlex.split(words[5])
    assert inner[:2] == ["echo", "$$"] and inner[inner.index("exec") + 1 :] == ["printf", "%s\\n", *argv]


@SETTINGS
@given(argv=st.lists(hostile_names, min_size=1, max_size=4))
def test_ssh_run_command_line_splits_back_into_the_argv(argv: list[str], tmp_path: Path) -> None:
    """The line sshd hands to the login shell ends in `exec timeout ... ARGV`; a POSIX split gives back the argv."""
    sandbox, parent = fresh(tmp_path, "x")
    target = ssh_target(sandbox, parent)
    sent: list[str] = []

    def record(command: str, timeout: float, what: str, stdin: bytes | None = None) -> SimpleNamespace:
        sent.append(command)
        return SimpleNamespace(stdout=b"", stderr=b"", exit_status=0, exit_signal=None)

    target._exec = record  # type: ignore[method-assign]
    target.run(["printf", "%s\\n", *argv], timeout=30)
    words = shlex.split(sent[0])
    assert words[:2] == ["cd", target.workdir]
    assert words[words.index("timeout") + 3 :] == ["printf", "%s\\n", *argv]
