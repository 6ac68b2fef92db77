"""Proxy auth tokens: what a caller sends to a web endpoint declared with
``requires_proxy_auth=True``, as the ``Skiff-Key`` and ``Skiff-Secret`` headers
(``Modal-Key`` / ``Modal-Secret`` work too, so callers of a moved Modal app keep theirs).

A token is stored as an internal secret, ``__proxy-<key>``, Fernet-encrypted like any
other. The gateway remembers a pair that checked out for a few seconds, so a busy
protected endpoint does not decrypt on every request; deleting the token forgets it at
once.
"""

from __future__ import annotations

import hmac
import secrets
import time

from sqlalchemy import select

from ..protocol.errors import NotFoundError
from .secrets import PROXY_PREFIX, SecretVault
from .store import Store
from .store.models import SecretRow

REMEMBER_S = 30.0  # seconds a verified pair is trusted without decrypting it again


class ProxyTokens:
    def __init__(self, store: Store, vault: SecretVault) -> None:
        self.store = store
        self.vault = vault
        self._verified: dict[str, tuple[str, float]] = {}  # key -> (secret, trusted until)
        self._deletions = 0  # a check that spans a deletion does not remember its answer

    def create(self) -> tuple[str, str]:
        """A new (key, secret); the secret is shown to the caller this once."""
        key, secret = "wk-" + secrets.token_urlsafe(12), "ws-" + secrets.token_urlsafe(24)
        self.vault.put(PROXY_PREFIX + key, {"SECRET": secret}, overwrite=False)
        return key, secret

    def list(self) -> list[dict]:
        with self.store.session() as s:
            rows = s.scalars(select(SecretRow).where(SecretRow.name.startswith(PROXY_PREFIX)).order_by(SecretRow.created_at))
            return [{"key": r.name[len(PROXY_PREFIX):], "created_at": r.created_at} for r in rows]

    def delete(self, key: str) -> None:
        tokens = [t["key"] for t in self.list()]
        if key not in tokens:
            raise NotFoundError(f"no proxy token with key {key!r}; tokens: {', '.join(tokens) or 'none'} "
                                "(`skiff token list`)")
        self.vault.delete(PROXY_PREFIX + key)
        self._deletions += 1
        self._verified.pop(key, None)

    async def verify(self, key: str, secret: str) -> bool:
        remembered = self._verified.get(key)
        if remembered and remembered[1] > time.monotonic():
            return hmac.compare_digest(remembered[0].encode(), secret.encode())
        deletions = self._deletions
        try:
            stored = (await self.store.run(self.vault.reveal, PROXY_PREFIX + key, ["SECRET"]))["SECRET"]
        except (NotFoundError, ValueError):
            return False
        if not hmac.compare_digest(stored.encode(), secret.encode()):
            return False
        if deletions == self._deletions:
            self._verified[key] = (stored, time.monotonic() + REMEMBER_S)
        return True


def credentials(headers: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The (key, secret) a request carries, under skiff's header names or Modal's."""
    got = {k.lower(): v for k, v in headers}
    for prefix in ("skiff", "modal"):
        key, secret = got.get(f"{prefix}-key"), got.get(f"{prefix}-secret")
        if key and secret:
            return key, secret
    return None


__all__ = ["ProxyTokens", "credentials"]
