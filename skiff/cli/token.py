"""``skiff token``: keys for web endpoints that set ``requires_proxy_auth=True``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from .._client import get_client
from ._common import call, table


@click.group("token")
def token_group() -> None:
    """Manage proxy auth tokens for protected web endpoints."""


@token_group.command("create")
def create() -> None:
    """Create a key and secret for protected endpoints.

    Callers send them as the Skiff-Key and Skiff-Secret headers (Modal-Key and
    Modal-Secret work too).
    """

    async def do() -> dict[str, Any]:
        token: dict[str, Any] = await (await get_client()).request("POST", "/proxy-tokens")
        return token

    token = call(do())
    click.echo(f"Skiff-Key: {token['key']}\nSkiff-Secret: {token['secret']}")
    click.echo("The secret is shown once; store it now.", err=True)


@token_group.command("list")
def list_tokens() -> None:
    """List proxy auth tokens: their keys, never their secrets."""

    async def do() -> list[dict[str, Any]]:
        tokens: list[dict[str, Any]] = (await (await get_client()).request("GET", "/proxy-tokens"))["tokens"]
        return tokens

    rows = [(t["key"], dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M:%S")) for t in call(do())]
    table("proxy auth tokens", ["Key", "Created"], rows)


@token_group.command("delete")
@click.argument("key")
def delete(key: str) -> None:
    """Delete the token with KEY; requests carrying it are refused at once."""

    async def do() -> None:
        await (await get_client()).request("DELETE", f"/proxy-tokens/{key}")

    call(do())
    click.echo(f"deleted {key}")
