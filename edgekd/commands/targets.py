"""`edgekd targets list` and `edgekd targets doctor NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd import console

targets_app = typer.Typer(
    help="Devices to benchmark on: this machine, Raspberry Pis over SSH, Android over adb.", no_args_is_help=True
)

InventoryOption = Annotated[Path | None, typer.Option("--inventory", "-i", help="targets.toml to read")]


@targets_app.command("list")
def list_targets(inventory: InventoryOption = None) -> None:
    """List the targets in the inventory (and `local`)."""
    from rich.table import Table

    from edgekd.inventory import load_inventory

    entries, path = load_inventory(inventory)
    if console.is_json():
        console.emit_json({"inventory": str(path) if path else None, "targets": entries})
        return
    table = Table(title=f"targets ({path or 'no inventory file; built-in only'})")
    for column in ("name", "kind", "address"):
        table.add_column(column)
    for name, entry in entries.items():
        address = entry.get("host") or entry.get("serial") or ("this machine" if entry["kind"] == "local" else "")
        if entry.get("port"):
            address += f":{entry['port']}"
        table.add_row(name, entry["kind"], address)
    console.say(table)


@targets_app.command("doctor")
def doctor(name: str, inventory: InventoryOption = None) -> None:
    """Check a target: reachable, architecture, Python, runtimes, disk, governor, temperature, throttling."""
    from rich.table import Table

    from edgekd.inventory import make_target

    target = make_target(name, inventory)
    try:
        checks = target.doctor()
    finally:
        target.cleanup()
    failed = [c for c in checks if not c.ok]
    if console.is_json():
        console.emit_json({"target": name, "checks": [vars(c) for c in checks], "ok": not failed})
    else:
        table = Table(title=f"doctor: {name}")
        for column in ("check", "", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail, check.fix or "")
        console.say(table)
        # A table cell folds long words at the terminal's width (80 columns in a pipe): fingerprints and
        # commands to copy are printed again whole, one line each, markup off.
        for check in failed:
            console.say(f"FAIL {check.name}: {check.detail}", soft_wrap=True, markup=False)
            if check.fix:
                console.say(f"  fix: {check.fix}", soft_wrap=True, markup=False)
    if failed:
        raise typer.Exit(1)


@targets_app.command("trust")
def trust(
    name: str,
    inventory: InventoryOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="add the key without asking")] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="remove a different key recorded for this host (a reinstalled device) and add the new one"
        ),
    ] = False,
) -> None:
    """Show an SSH target's host key fingerprint and add the key to known_hosts (after you confirm it).

    A different key already recorded for the host is refused (it may be an attack); `--replace` removes it."""
    from edgekd.errors import UsageError
    from edgekd.inventory import make_target

    keys = make_target(name, inventory).host_keys()
    if keys is None:
        raise UsageError(f"target '{name}' is not an SSH target", hint='only kind = "ssh" targets have host keys')
    line, fingerprint = keys.fetch_host_key()
    console.say(f"{name} presents host key {fingerprint}")
    console.say("compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the device")
    if not yes and not typer.confirm("add this key to known_hosts?", default=False):
        raise typer.Exit(1)
    change = keys.trust_host_key(line, replace=replace)
    path, removed = change.path, list(change.removed)
    if console.is_json():
        console.emit_json(
            {
                "target": name,
                "fingerprint": fingerprint,
                "known_hosts": str(path),
                "added": change.added,
                "removed": removed,
            }
        )
    elif not change.added:
        console.say(f"already trusted in {path}")
    else:
        if removed:
            console.say(f"removed the old key(s) {', '.join(removed)} from {path}")
        console.say(f"added to {path}")
