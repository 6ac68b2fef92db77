"""``skiff app``: list, follow and stop apps."""

from __future__ import annotations

import asyncio
import datetime as dt

import click

from .._client import get_client
from .._runner import LogPrinter
from ._common import call, table


async def _newest_app(name_or_id: str) -> dict:
    client = await get_client()
    return (await client.request("GET", f"/apps/{name_or_id}"))[0]


@click.group("app")
def app_group() -> None:
    """Manage apps: list them, read their logs, stop them."""


@app_group.command("list")
def list_apps() -> None:
    """Show apps, newest first, with their state."""
    async def fetch():
        return await (await get_client()).request("GET", "/apps")

    rows = [(a["app_id"], a["name"], a["state"], ", ".join(a["functions"]), a["containers"],
             _when(a["created_at"]), _when(a["stopped_at"])) for a in call(fetch())]
    table("skiff apps", ["App ID", "Name", "State", "Functions", "Containers", "Created", "Stopped"], rows)


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
        call(stream())
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

    click.echo(f"stopped {call(do())}")
