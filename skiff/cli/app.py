"""``skiff app``: list, follow and stop apps."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

import click

from .._client import get_client
from .._runner import LogPrinter
from .._sync import run_sync
from ..exception import Error


def _call(coro):
    try:
        return run_sync(coro)
    except Error as exc:
        raise click.ClickException(str(exc)) from None


async def _newest_app(name_or_id: str) -> dict:
    client = await get_client()
    return (await client.request("GET", f"/apps/{name_or_id}"))[0]


@click.group("app")
def app_group() -> None:
    """Manage apps: list them, read their logs, stop them."""


@app_group.command("list")
def list_apps() -> None:
    """Show apps, newest first, with their state."""
    from rich.console import Console
    from rich.table import Table

    async def fetch():
        return await (await get_client()).request("GET", "/apps")

    apps = _call(fetch())
    table = Table(title="skiff apps")
    table.add_column("App ID", no_wrap=True, min_width=23)  # whole, so it can be pasted
    for col in ("Name", "State", "Functions", "Containers", "Created", "Stopped"):
        table.add_column(col)
    for a in apps:
        table.add_row(
            a["app_id"], a["name"], a["state"], ", ".join(a["functions"]), str(a["containers"]),
            _when(a["created_at"]), _when(a["stopped_at"]),
        )
    # Piped output is not cut to 80 columns: scripts read these lines whole.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


@app_group.command("logs")
@click.argument("app")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the app stops.")
def logs(app: str, follow: bool) -> None:
    """Print an app's logs. APP is its name (the newest app of that name) or its id."""

    async def stream() -> None:
        client = await get_client()
        info = await _newest_app(app)
        printer, after = LogPrinter(), 0
        while True:
            batch = await client.request(
                "GET", f"/apps/{info['app_id']}/logs", params={"after": after, "timeout": 25 if follow else 0}
            )
            for entry in batch["entries"]:
                after = entry["seq"]
                printer.print(entry)
            if not batch["entries"] and (not follow or batch["app_state"] == "stopped"):
                return

    try:
        _call(stream())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


@app_group.command("stop")
@click.argument("app")
def stop(app: str) -> None:
    """Stop an app and its containers. APP is its name or id."""

    async def do() -> str:
        info = await _newest_app(app)
        await (await get_client()).request("POST", f"/apps/{info['app_id']}/stop")
        return info["app_id"]

    click.echo(f"stopped {_call(do())}")
