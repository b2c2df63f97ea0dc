"""Security properties checked over the source tree (AST, not grep) and on the SSH target's defaults.

- every `torch.load` passes `weights_only=True`; nothing calls pickle/marshal/shelve loaders, eval or exec;
  no `np.load(allow_pickle=True)`: caches and data files hold arrays and JSON only;
- no `shell=True`, `os.system` or `os.popen`: local subprocesses take argument lists;
- file modes are only ever set on files edgekd itself creates (allow-list below), never on a key file;
- SSH verifies host keys by default: asyncssh is never given `known_hosts=None`.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekd.targets.ssh.target import SshTarget

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("edgekd", "bench")

# Every place that changes a file mode, and why it is not a key file.
CHMOD_SITES = {
    ("edgekd/fileio.py", "os.chmod"): "atomic writes: the new file gets the umask mode mkstemp withheld",
    ("edgekd/handoff/publish.py", "chmod"): "the handoff zip edgekd just wrote becomes 0644 to be shared",
    ("bench/suites/ssh.py", "os.chmod"): "the benchmark's own authorized_keys for its loopback sshd: narrowed to 0600",
}


def source_files() -> Iterator[Path]:
    for folder in SOURCE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def calls() -> Iterator[tuple[str, ast.Call, str]]:
    """(file relative to the repo, call node, dotted name of what is called) for every call in the source."""
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield str(path.relative_to(ROOT)), node, dotted(node.func)


def dotted(func: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return ""  # a method of a call's result, e.g. torch.jit.load(...).eval()
    parts.append(func.id)
    return ".".join(reversed(parts))


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_every_torch_load_passes_weights_only_true() -> None:
    loads = [(file, call) for file, call, name in calls() if name == "torch.load"]
    assert len(loads) >= 3, "the scan found too few torch.load calls: is it still reading the source?"
    unsafe = [f"{file}:{call.lineno}" for file, call in loads if not is_true(keyword(call, "weights_only"))]
    assert unsafe == []


def test_nothing_unpickles_or_evaluates_strings() -> None:
    banned = {"pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load", "marshal.loads", "shelve.open",
              "eval", "exec", "dill.load", "joblib.load", "cloudpickle.load"}  # fmt: skip
    found = [f"{file}:{call.lineno} {name}" for file, call, name in calls() if name in banned]
    assert found == []


def test_numpy_loads_never_allow_pickle() -> None:
    loads = [(file, call) for file, call, name in calls() if name in ("np.load", "numpy.load")]
    assert len(loads) >= 3
    allowing = [f"{file}:{call.lineno}" for file, call in loads if not _false_or_absent(keyword(call, "allow_pickle"))]
    assert allowing == []  # numpy's default is allow_pickle=False


def _false_or_absent(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is False)


def test_local_commands_are_argument_lists() -> None:
    found = [f"{file}:{call.lineno} {name}" for file, call, name in calls()
             if name in ("os.system", "os.popen") or is_true(keyword(call, "shell"))]  # fmt: skip
    assert found == []


def test_file_modes_change_only_on_files_edgekd_creates() -> None:
    sites = {(file, name) for file, call, name in calls() if name == "os.chmod" or name.endswith(".chmod")}
    local = {(file, "chmod" if name.endswith(".chmod") and name != "os.chmod" else name) for file, name in sites}
    assert local <= set(CHMOD_SITES), f"new chmod site(s): {local - set(CHMOD_SITES)}; list them with a reason"


def test_trusting_a_host_key_keeps_known_hosts_private(tmp_path: Path) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"
    key = tmp_path / "ssh" / "id_ed25519"
    target = SshTarget.from_entry(
        "pi", {"host": "pi.local", "known_hosts": str(known_hosts), "key": str(key)}, tmp_path
    )
    written = target.trust("pi.local ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample")
    assert written == known_hosts
    assert stat.S_IMODE(known_hosts.parent.stat().st_mode) == 0o700
    assert not stat.S_IMODE(known_hosts.stat().st_mode) & (stat.S_IWGRP | stat.S_IWOTH)
    assert not key.exists()  # the key file is read by asyncssh, never written or re-moded by edgekd


@pytest.mark.parametrize("known_hosts", [None, "missing_known_hosts"])
def test_ssh_verifies_host_keys_by_default(known_hosts: str | None, tmp_path: Path) -> None:
    entry = {"host": "pi.local"} | ({"known_hosts": known_hosts} if known_hosts else {})
    options = SshTarget.from_entry("pi", entry, tmp_path)._connect_options()
    # asyncssh checks ~/.ssh/known_hosts when the option is absent; None would switch checking off. A
    # per-target file that does not exist trusts no key at all: an empty *trust set* (host keys, CA keys,
    # revoked keys), since a plain empty list makes asyncssh fall back to ~/.ssh/known_hosts (issue 15, bug 2)
    if known_hosts is None:
        assert "known_hosts" not in options
    else:
        assert options["known_hosts"] == ([], [], [])


def test_no_source_passes_known_hosts_none() -> None:
    found = []
    for file, call, _ in calls():
        value = keyword(call, "known_hosts")
        if isinstance(value, ast.Constant) and value.value is None:
            found.append(f"{file}:{call.lineno}")
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "edgekd" / "targets" / "ssh").glob("*.py"))
    assert found == [] and '"known_hosts": None' not in text and "known_hosts=None" not in text
