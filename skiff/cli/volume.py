"""``skiff volume``: create, inspect and move files in and out of volumes.

``put`` and ``get`` move files block by block (see :mod:`skiff._volume_transfer`), a
few blocks at a time, so a file of any size moves with flat memory, and show a progress
bar on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from .._client import get_client
from .._volume_transfer import download_files, store_files
from ..protocol.wire import VolumeCommit, encode
from ..volume import Volume
from ._common import call, table


@click.group("volume")
def volume_group() -> None:
    """Manage volumes: persistent file trees functions mount."""


@volume_group.command("create")
@click.argument("name")
def create(name: str) -> None:
    """Create volume NAME."""
    call(Volume.from_name(name, create_if_missing=True)._ensure())
    click.echo(f"created volume {name}")


@volume_group.command("list")
def list_volumes() -> None:
    """List volumes with their version, file count and size."""

    async def fetch() -> list[dict[str, Any]]:
        volumes: list[dict[str, Any]] = (await (await get_client()).request("GET", "/volumes"))["volumes"]
        return volumes

    table("skiff volumes", ["Name", "Version", "Files", "Size"],
          [(v["name"], v["version"], v["files"], _size(v["bytes"])) for v in call(fetch())])


@volume_group.command("ls")
@click.argument("name")
@click.argument("path", default="/")
@click.option("-r", "--recursive", is_flag=True, help="List files in subdirectories too.")
def ls(name: str, path: str, recursive: bool) -> None:
    """List files in volume NAME under PATH."""
    for entry in call(Volume.from_name(name).listdir.aio(path, recursive=recursive)):
        suffix = "/" if entry.type == "directory" else f"  {_size(entry.size)}"
        click.echo(f"{entry.path}{suffix}")


@volume_group.command("put")
@click.argument("name")
@click.argument("local_path", type=click.Path(exists=True))
@click.argument("remote_path", default="/")
@click.option("--force", is_flag=True, help="Overwrite files that exist in the volume.")
def put(name: str, local_path: str, remote_path: str, force: bool) -> None:
    """Upload a file or directory to volume NAME (at REMOTE_PATH)."""
    local = Path(local_path)
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    base = remote_path.strip("/")
    if local.is_file():
        targets = {(f"{base}/{local.name}" if remote_path.endswith("/") or not base else base).strip("/"): local}
    else:
        targets = {f"{base}/{p.relative_to(local).as_posix()}".strip("/"): p for p in files}

    async def do() -> int:
        vol = Volume.from_name(name)
        client = await vol._client()
        if not force:
            existing = {e["path"] for e in (await client.request(
                "GET", f"/volumes/{name}/ls", params={"path": "", "recursive": True}))["entries"]}
            clash = sorted(set(targets) & existing)
            if clash:
                raise click.ClickException(f"{clash[0]} already exists in volume {name}; use --force to overwrite")
        total = sum(p.stat().st_size for p in targets.values())
        with _progress(f"put {name}", total) as bar:
            remotes = list(targets)
            entries = await store_files(client, [targets[r] for r in remotes], on_bytes=bar.advance)
        changes: dict[str, dict[str, Any] | None] = dict(zip(remotes, entries, strict=True))
        res = await client.request("POST", f"/volumes/{name}/commit", json=encode(VolumeCommit(changes=changes)))
        version: int = res["version"]
        return version

    version = call(do())
    click.echo(f"uploaded {len(targets)} file(s) to {name} (version {version})")


@volume_group.command("get")
@click.argument("name")
@click.argument("remote_path")
@click.argument("local_path", default=".")
@click.option("--force", is_flag=True, help="Overwrite a local file that exists.")
def get(name: str, remote_path: str, local_path: str, force: bool) -> None:
    """Download a file or directory from a volume.

    Copies REMOTE_PATH of volume NAME to LOCAL_PATH ('-' writes a file to stdout).
    """

    async def do() -> int:
        vol = Volume.from_name(name)
        client = await vol._client()
        listing = await client.request("GET", f"/volumes/{name}/ls", params={"path": remote_path, "recursive": True})
        entries = [e for e in listing["entries"] if e["type"] == "file"]  # manifest entries, with their paths
        root = remote_path.strip("/")
        if local_path == "-":
            for e in entries:
                async for chunk in vol.read_file.aio(e["path"]):
                    sys.stdout.buffer.write(chunk)
            return len(entries)
        dest = Path(local_path)
        files = []
        for e in entries:
            rel = Path(e["path"]).name if e["path"] == root else Path(e["path"][len(root):].lstrip("/"))
            target = dest / rel if dest.is_dir() or len(entries) > 1 or e["path"] != root else dest
            if target.exists() and not force:
                raise click.ClickException(f"{target} exists; use --force to overwrite")
            files.append((e, target))
        temps = []
        for entry, target in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            temps.append((entry, target.with_name(f".{target.name}.skiff-part")))
        try:
            with _progress(f"get {name}", sum(e["size"] for e in entries)) as bar:
                await download_files(client, temps, on_bytes=bar.advance)
            for (_, target), (_, tmp) in zip(files, temps, strict=True):
                tmp.replace(target)
        finally:
            for _, tmp in temps:
                tmp.unlink(missing_ok=True)
        return len(entries)

    count = call(do())
    if local_path != "-":
        click.echo(f"downloaded {count} file(s) from {name}", err=True)


@volume_group.command("rm")
@click.argument("name")
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Remove a directory and everything in it.")
def rm(name: str, path: str, recursive: bool) -> None:
    """Remove PATH from volume NAME."""
    call(Volume.from_name(name).remove_file.aio(path, recursive=recursive))
    click.echo(f"removed {path} from {name}")


@volume_group.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete volume NAME and free the files nothing else holds."""
    if not yes:
        click.confirm(f"Delete volume {name} and all its files?", abort=True)

    async def do() -> None:
        await (await get_client()).request("DELETE", f"/volumes/{name}")

    call(do())
    click.echo(f"deleted volume {name}")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=n)


def _progress(label: str, total: int) -> AbstractContextManager[_Bar]:
    """A transfer progress bar on a terminal; a silent one elsewhere."""
    if not sys.stderr.isatty():
        return nullcontext(_Bar(None, None))
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    @contextmanager
    def bar() -> Iterator[_Bar]:
        with Progress("[bold]" + label, BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=Console(stderr=True), transient=True) as p:
            yield _Bar(p, p.add_task(label, total=total))

    return bar()
