"""Proxy auth tokens: what a caller sends to a web endpoint declared with
``requires_proxy_auth=True``, as the ``Skiff-Key`` and ``Skiff-Secret`` headers
(``Modal-Key`` / ``Modal-Secret`` work too, so callers of a moved Modal app keep theirs).

A token is a row of its own (``proxy_tokens``): its key and the sha256 of its secret,
which is shown once, when the token is made. Checking a pair is one primary-key lookup
and a digest compare, so nothing is cached: a deleted token stops working at once.
Tokens are not secrets, and no secrets route reaches them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from sqlalchemy import delete, select

from ..protocol.errors import NotFoundError
from .secrets import PROXY_PREFIX, SecretVault
from .store import Store
from .store.database import rowcount
from .store.models import ProxyTokenRow, SecretRow

log = logging.getLogger("skiff.proxy_tokens")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ProxyTokens:
    def __init__(self, store: Store, vault: SecretVault) -> None:
        self.store = store
        self.vault = vault

    def create(self) -> tuple[str, str]:
        """A new (key, secret); the secret is shown to the caller this once."""
        key, secret = "wk-" + secrets.token_urlsafe(12), "ws-" + secrets.token_urlsafe(24)
        with self.store.session() as s, s.begin():
            s.add(ProxyTokenRow(key=key, secret_sha256=_digest(secret), created_at=time.time()))
        return key, secret

    def list(self) -> list[dict[str, Any]]:
        with self.store.session() as s:
            rows = s.scalars(select(ProxyTokenRow).order_by(ProxyTokenRow.created_at))
            return [{"key": r.key, "created_at": r.created_at} for r in rows]

    def delete(self, key: str) -> None:
        with self.store.session() as s, s.begin():
            if rowcount(s.execute(delete(ProxyTokenRow).where(ProxyTokenRow.key == key))):
                return
        tokens = [t["key"] for t in self.list()]
        raise NotFoundError(f"no proxy token with key {key!r}; tokens: {', '.join(tokens) or 'none'} "
                            "(`skiff token list`)")

    def _check(self, key: str, secret: str) -> bool:
        with self.store.session() as s:
            row = s.get(ProxyTokenRow, key)
            return row is not None and hmac.compare_digest(row.secret_sha256, _digest(secret))

    async def verify(self, key: str, secret: str) -> bool:
        if len(key) > 64 or len(secret) > 256:
            return False
        return await self.store.run(self._check, key, secret)

    def migrate_old_tokens(self) -> int:
        """Move tokens stored as ``__proxy-<key>`` secrets (before proxy tokens had a table
        of their own) into it, digested; returns how many moved."""
        with self.store.session() as s:
            names = [n for n in s.scalars(select(SecretRow.name).where(SecretRow.name.startswith(PROXY_PREFIX)))]
        for name in names:
            secret = self.vault.reveal(name, ["SECRET"])["SECRET"]
            with self.store.session() as s, s.begin():
                s.merge(ProxyTokenRow(key=name[len(PROXY_PREFIX):], secret_sha256=_digest(secret), created_at=time.time()))
                s.execute(delete(SecretRow).where(SecretRow.name == name))
        if names:
            log.info("moved %d proxy token(s) out of the secrets table", len(names))
        return len(names)


def credentials(headers: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The (key, secret) a request carries, under skiff's header names or Modal's."""
    got = {k.lower(): v for k, v in headers}
    for prefix in ("skiff", "modal"):
        key, secret = got.get(f"{prefix}-key"), got.get(f"{prefix}-secret")
        if key and secret:
            return key, secret
    return None


__all__ = ["ProxyTokens", "credentials"]
