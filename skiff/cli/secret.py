"""``skiff secret``: create, list and delete secrets. Values are never shown."""

from __future__ import annotations

from typing import Any

import click

from .._client import get_client
from ..protocol.wire import SecretCreate, encode
from ..secret import parse_dotenv
from ._common import call, table


@click.group("secret")
def secret_group() -> None:
    """Manage secrets: values functions get as environment variables."""


@secret_group.command("create")
@click.argument("name")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--from-dotenv", "dotenv", type=click.Path(exists=True, dir_okay=False), help="Read KEY=VALUE lines from a .env file.")
@click.option("--force", is_flag=True, help="Replace the secret if it exists.")
def create(name: str, pairs: tuple[str, ...], dotenv: str | None, force: bool) -> None:
    """Create secret NAME from KEY=VALUE pairs and/or a .env file.

    \b
      skiff secret create openai-api-key OPENAI_API_KEY=sk-...
      skiff secret create app-env --from-dotenv .env
    """
    values: dict[str, str] = {}
    if dotenv:
        with open(dotenv) as f:
            values.update(parse_dotenv(f.read()))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{pair!r} is not KEY=VALUE")
        values[key] = value
    if not values:
        raise click.UsageError("give at least one KEY=VALUE or --from-dotenv FILE")

    async def do() -> None:
        await (await get_client()).request("POST", "/secrets", json=encode(SecretCreate(name=name, values=values, overwrite=force)))

    call(do())
    click.echo(f"created secret {name} with keys {', '.join(sorted(values))}")


@secret_group.command("list")
def list_secrets() -> None:
    """List secrets: their names and keys, never their values."""

    async def fetch() -> list[dict[str, Any]]:
        secrets: list[dict[str, Any]] = (await (await get_client()).request("GET", "/secrets"))["secrets"]
        return secrets

    rows = [(s["name"], ", ".join(s["keys"]), _when(s["updated_at"])) for s in call(fetch())]
    table("skiff secrets", ["Name", "Keys", "Updated"], rows)


@secret_group.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete secret NAME."""
    if not yes:
        click.confirm(f"Delete secret {name}?", abort=True)

    async def do() -> None:
        await (await get_client()).request("DELETE", f"/secrets/{name}")

    call(do())
    click.echo(f"deleted secret {name}")


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
