"""``skiff usage``: what each function's containers ran for (metering)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import click

from .._client import get_client
from ._common import call, table

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: float | None = None) -> float:
    """``--since``: a span back from now (``90m``, ``24h``, ``7d``) or a date/time
    (``2026-11-01``, ``2026-11-01T09:30``, local time)."""
    now = time.time() if now is None else now
    m = _SPAN.match(value.strip())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return dt.datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a span back from now (like 90m, 24h or 7d) nor a date (like 2026-11-01 "
            "or 2026-11-01T09:30)", param_hint="--since") from None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@click.command("usage")
@click.option("--since", default="24h", show_default=True,
              help="Start of the window: a span back from now (90m, 24h, 7d) or a date (2026-11-01).")
@click.option("--app", "app_name", metavar="NAME", help="Only this app.")
def usage_command(since: str, app_name: str | None) -> None:
    """Show container time per function (metering).

    Containers are metered from start to stop, so a function scaled to zero costs
    nothing.

    \b
    Columns: container time, and what the containers reserved over it: CPU cores
    (core-hours), memory (GiB-hours) and GPUs (GPU-hours); "-" where nothing was
    reserved.
    """
    start = parse_since(since)

    async def fetch() -> list[dict[str, Any]]:
        params = {"since": start} | ({"app": app_name} if app_name else {})
        res = await (await get_client()).request("GET", "/usage", params=params)
        functions: list[dict[str, Any]] = res["functions"]
        return functions

    rows = call(fetch())
    if not rows:
        where = f" of app {app_name!r}" if app_name else ""
        click.echo(f"no containers{where} ran since {dt.datetime.fromtimestamp(start):%Y-%m-%d %H:%M}")
        return

    def hours(value: float | None) -> str:
        return "-" if value is None else f"{value / 3600:.3f}"

    lines = [(r["app"], r["function"], r["containers"], _duration(r["seconds"]), hours(r["cpu_seconds"]),
              hours(r["memory_gib_seconds"]), f"{hours(r['gpu_seconds'])} ({r['gpu']})" if r["gpu"] else "-")
             for r in rows]
    total = sum(r["seconds"] for r in rows)
    lines.append(("total", "", sum(r["containers"] for r in rows), _duration(total), "", "", ""))
    table(f"usage since {dt.datetime.fromtimestamp(start):%Y-%m-%d %H:%M}",
          ["App", "Function", "Containers", "Container time", "CPU core-h", "Memory GiB-h", "GPU-h"], lines)
