"""The emulated Raspberry Pi CPU: aarch64 CPython + real aarch64 wheels, run by qemu-aarch64.

`aarch64_root()` builds the root once (tests/support/make_aarch64_root.sh, cached under
/var/cache/edgekd-tests/aarch64 or $EDGEKD_AARCH64_ROOT) and returns it. `install_python_wrapper()` makes
a test user's `python3` that one flavour of device: the wrapper execs qemu-aarch64 with the flavour's
wheels on PYTHONPATH, so `ssh user@127.0.0.1 python3 ...` runs aarch64 Python exactly as a Pi would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("make_aarch64_root.sh")
DEFAULT_ROOT = Path("/var/cache/edgekd-tests/aarch64")

# flavour -> (board root, the board's CPU for qemu -cpu, what a Pi image with it has)
FLAVOURS = {
    "litert": ("pi5", "cortex-a76", "Raspberry Pi 5, ai-edge-litert 2.3 + numpy 2 (current Raspberry Pi OS)"),
    "tflite": ("pi4", "cortex-a72", "Raspberry Pi 4, tflite-runtime 2.14 + numpy < 2 (older Pi images)"),
    "tflite-numpy2": ("pi4", "cortex-a72", "Raspberry Pi 4, tflite-runtime 2.14 + numpy 2 (a broken mix)"),
}


def root_dir() -> Path:
    return Path(os.environ.get("EDGEKD_AARCH64_ROOT", DEFAULT_ROOT))


def aarch64_root() -> Path:
    """Build the cached root if it is not there yet (about a minute, needs Debian and PyPI) and return it."""
    root = root_dir()
    if not (root / ".complete").exists():
        env = dict(os.environ, EDGEKD_HOST_PYTHON=sys.executable)
        subprocess.run(["bash", str(SCRIPT), str(root)], check=True, env=env)
    return root


def qemu_python_argv(root: Path, flavour: str) -> list[str]:
    """argv prefix that runs the root's aarch64 python3.11 on this machine as the flavour's board.

    The board's own core (-cpu cortex-a76 / cortex-a72), not qemu's default "max": with "max", XNNPACK in
    ai-edge-litert 2.3 picks int8 kernels that qemu 7.2 emulates wrongly (outputs off by up to 137 quanta)."""
    board, cpu, _ = FLAVOURS[flavour]
    qemu = shutil.which("qemu-aarch64") or "qemu-aarch64"
    return [qemu, "-cpu", cpu, "-L", str(root / "boards" / board), str(root / "root/usr/bin/python3.11")]


def flavour_env(root: Path, flavour: str) -> dict[str, str]:
    return {"PYTHONPATH": str(root / "flavours" / flavour), "PYTHONNOUSERSITE": "1"}


def install_python_wrapper(bin_dir: Path, root: Path, flavour: str, owner: str | None = None) -> Path:
    """Write `bin_dir/python3`: a shell script that runs aarch64 Python with `flavour`'s wheels."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; known: {', '.join(FLAVOURS)}")
    env = flavour_env(root, flavour)
    argv = " ".join(f'"{part}"' for part in qemu_python_argv(root, flavour))
    wrapper = bin_dir / "python3"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"# aarch64 CPython under qemu: {FLAVOURS[flavour][2]}\n"
        f'export PYTHONPATH="{env["PYTHONPATH"]}" PYTHONNOUSERSITE=1\n'
        f'exec {argv} "$@"\n'
    )
    wrapper.chmod(0o755)
    if owner:
        shutil.chown(wrapper, owner, owner)
    return wrapper
