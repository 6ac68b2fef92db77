"""``skiff app``: list, follow and stop apps."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import click

from .._client import get_client
from .._runner import LogPrinter
from ._common import call, table


async def _newest_app(name_or_id: str) -> dict[str, Any]:
    """The AppInfo, as JSON, of the newest app with this name (or of the app with this id)."""
    client = await get_client()
    infos: list[dict[str, Any]] = await client.request("GET", f"/apps/{name_or_id}")
    return infos[0]


@click.group("app")
def app_group() -> None:
    """Manage apps: list them, read their logs, stop them, roll them back."""


@app_group.command("list")
def list_apps() -> None:
    """Show apps, newest first, with their state."""
    async def fetch() -> list[dict[str, Any]]:
        apps: list[dict[str, Any]] = await (await get_client()).request("GET", "/apps")
        return apps

    rows = []
    for a in call(fetch()):
        notes = [url for url in a["urls"].values()]
        notes += [f"{fn} next {_when(at)}" for fn, at in a["next_runs"].items()]
        version = f"v{a['version']}" if a["kind"] == "deployed" else "ephemeral"
        rows.append((a["app_id"], a["name"], a["state"], version, ", ".join(a["functions"]), a["containers"],
                     "\n".join(notes), _when(a["created_at"])))
    table("skiff apps", ["App ID", "Name", "State", "Version", "Functions", "Containers", "URLs / next runs",
                         "Created"], rows)


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
        app_id: str = info["app_id"]
        await (await get_client()).request("POST", f"/apps/{app_id}/stop")
        return app_id

    click.echo(f"stopped {call(do())}")


@app_group.command("history")
@click.argument("app")
def history(app: str) -> None:
    """List a deployed app's versions, and its recent scheduled runs."""

    async def fetch() -> dict[str, Any]:
        h: dict[str, Any] = await (await get_client()).request("GET", f"/deployed/{app}/history")
        return h

    h = call(fetch())
    table(f"{h['name']} versions", ["Version", "Deployed", "Functions", "Live"],
          [(v["version"], _when(v["deployed_at"]), ", ".join(v["functions"]), "✓" if v["live"] else "")
           for v in h["versions"]])
    if h["schedule_runs"]:
        table("scheduled runs", ["Function", "At", "Status"],
              [(r["function"], _when(r["at"]), r["status"]) for r in h["schedule_runs"]])


@app_group.command("rollback")
@click.argument("app")
@click.argument("version", type=int, required=False)
def rollback(app: str, version: int | None) -> None:
    """Go back to an earlier version of a deployed app.

    Deploys VERSION of APP again, as a new version (default: the one before the live
    one); `skiff app history APP` lists them.
    """

    async def do() -> dict[str, Any]:
        params = {"version": version} if version is not None else None
        info: dict[str, Any] = await (await get_client()).request("POST", f"/deployed/{app}/rollback", params=params)
        return info

    info = call(do())
    click.echo(f"rolled {info['name']} back: version {info['version']} is live")
