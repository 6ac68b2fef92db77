"""``skiff deploy`` and ``skiff serve``: apps that live on the server."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from .._deploy import deploy_app
from ..exception import Error
from ._common import call
from .run import find_app, import_file


@click.command("deploy", short_help="Deploy an app as a new version.")
@click.argument("file", metavar="FILE")
@click.option("--name", help="Deploy under this name instead of the app's own.")
def deploy_command(file: str, name: str | None) -> None:
    """Deploy the app in FILE as a new version; it keeps running after this exits.

    \b
      skiff deploy app.py
      skiff deploy app.py --name my-app

    Prints each web endpoint's URL. `skiff app history` lists versions, and
    `skiff app rollback` goes back to one.
    """
    app = find_app(import_file(file))
    info = call(deploy_app(app, name))
    click.echo(f"deployed {info['name']} version {info['version']} ({info['app_id']})")
    for label, url in sorted(info["urls"].items()):
        click.echo(f"  {label}: {url}")
    for fn, at in sorted(info["next_runs"].items()):
        click.echo(f"  {fn}: next run {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))}")


@click.command("serve", short_help="Serve an app's web endpoints with live reload.")
@click.argument("file", metavar="FILE")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between checks for changed files.")
def serve_command(file: str, interval: float) -> None:
    """Run the app's web endpoints with live reload: edit FILE and it redeploys.

    Ctrl-C stops it.
    """
    path = Path(file).resolve()
    watched = path.parent

    def snapshot() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in watched.rglob("*.py") if ".venv" not in p.parts}

    while True:
        before = snapshot()
        for mod in [m for m, v in sys.modules.items() if (f := getattr(v, "__file__", None)) and
                    str(Path(f).resolve()).startswith(str(watched))]:
            del sys.modules[mod]
        try:
            app = find_app(import_file(str(path)))
        except Exception as exc:  # a syntax error while editing: wait for the next save
            click.echo(f"skiff serve: {path.name} does not load: {exc}", err=True)
            _wait_for_change(snapshot, before, interval)
            continue
        try:
            with app.run() as running:
                assert running._running is not None  # set while the app runs
                info = call(running._running.info())
                for label, url in sorted(info["urls"].items()):
                    click.echo(f"serving {label}: {url}")
                if not info["urls"]:
                    click.echo("serving (the app has no web endpoints)")
                _wait_for_change(snapshot, before, interval)
                click.echo(f"{path.name} changed: reloading")
        except KeyboardInterrupt:
            click.echo("stopped")
            return
        except Error as exc:
            click.echo(f"skiff serve: {exc}", err=True)
            _wait_for_change(snapshot, before, interval)


def _wait_for_change(snapshot: Callable[[], dict[str, float]], before: dict[str, float], interval: float) -> None:
    while snapshot() == before:
        time.sleep(interval)


__all__ = ["deploy_command", "serve_command"]
