"""``skiff token``: keys for web endpoints that set ``requires_proxy_auth=True``."""

from __future__ import annotations

import secrets

import click

from .._client import get_client
from ._common import call


@click.group("token")
def token_group() -> None:
    """Manage proxy auth tokens for protected web endpoints."""


@token_group.command("create")
def create() -> None:
    """Create a key and secret for protected endpoints.

    Callers send them as the Skiff-Key and Skiff-Secret headers.
    """
    key, secret = "wk-" + secrets.token_urlsafe(12), "ws-" + secrets.token_urlsafe(24)

    async def do() -> None:
        body = {"name": "__proxy-" + key, "values": {"SECRET": secret}}
        await (await get_client()).request("POST", "/secrets", json=body)

    call(do())
    click.echo(f"Skiff-Key: {key}\nSkiff-Secret: {secret}")
    click.echo("The secret is shown once; store it now.", err=True)
