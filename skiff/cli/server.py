"""``skiff server``: the control plane on this machine."""

from __future__ import annotations

import os
import signal
import time

import click

from .. import _local_server
from ..protocol import config


@click.group("server")
def server_group() -> None:
    """Start, stop and inspect the local skiff server."""


@server_group.command("start")
@click.option("--host", default=config.DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=config.DEFAULT_PORT, show_default=True, type=int, help="Port to listen on.")
@click.option("--foreground", is_flag=True, help="Run in this terminal instead of in the background.")
def start(host: str, port: int, foreground: bool) -> None:
    """Start the server (in the background unless --foreground)."""
    url = f"http://{host}:{port}"
    if _local_server.is_healthy(url):
        click.echo(f"a skiff server is already running at {url}")
        return
    if foreground:
        from ..server.main import serve

        serve(host, port)
        return
    pid = _local_server.start_background(host, port)
    click.echo(f"skiff server started at {url} (pid {pid}); log: {_local_server.log_path()}")
    for note in _local_server.health(url).get("notes", []):
        click.echo(f"  {note}")


@server_group.command("stop")
def stop() -> None:
    """Stop the background server.

    That is the one `skiff server start` started, or `skiff run` (or any client)
    started on its own.
    """
    pid = _local_server.running_pid()
    if pid is None:
        click.echo("no background skiff server is running")
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    _local_server.pid_path().unlink(missing_ok=True)
    click.echo(f"skiff server (pid {pid}) stopped")


@server_group.command("status")
def status() -> None:
    """Say whether a server answers, and where."""
    url = config.server_url()
    if _local_server.is_healthy(url):
        pid = _local_server.running_pid()
        info = _local_server.health(url)
        click.echo(f"skiff server {info.get('version', '')} is running at {url}" + (f" (pid {pid})" if pid else ""))
        click.echo(f"runtime: {info.get('runtime')}; state: {config.home()}")
        for note in info.get("notes", []):
            click.echo(f"  {note}")
    else:
        click.echo(f"no skiff server answers at {url}; start one with `skiff server start`")
        raise SystemExit(1)
