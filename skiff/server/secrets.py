"""Secrets, encrypted at rest with Fernet under a key the server makes on first start.

No route returns a secret's values: they leave the server only as environment variables
of the containers whose functions name the secret.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..protocol.errors import InvalidError, NotFoundError
from ..protocol.names import check_name
from .store import Store
from .store.database import rowcount
from .store.models import SecretRow

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INLINE_PREFIX = "__inline-"  # secrets made from Secret.from_dict(...) and friends
PROXY_PREFIX = "__proxy-"  # proxy auth tokens for web endpoints (`skiff token create`)
_INTERNAL = (INLINE_PREFIX, PROXY_PREFIX)
_INLINE_NAME = re.compile(r"^__inline-[A-Za-z0-9._-]{1,190}$")


def check_secret_name(name: str) -> str:
    """A name a client may give a secret: a public one, or the inline secret of a
    function (``Secret.from_dict`` and friends). Other internal names are the server's."""
    if isinstance(name, str) and name.startswith(INLINE_PREFIX) and _INLINE_NAME.match(name):
        return name
    return check_name("secret", name)


def load_key(path: Path) -> bytes:
    """The server's Fernet key, created on first start, readable by its owner only."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


class SecretVault:
    def __init__(self, store: Store, key_path: Path) -> None:
        self.store = store
        self._fernet = Fernet(load_key(key_path))

    def put(self, name: str, values: dict[str, str], overwrite: bool) -> None:
        check_secret_name(name)
        if not isinstance(values, dict) or not values:
            raise InvalidError(f"secret {name!r} needs at least one KEY=VALUE")
        for key, value in values.items():
            if not _ENV_KEY.match(key):
                raise InvalidError(f"secret key {key!r} is not a valid environment variable name")
            if not isinstance(value, str):
                raise InvalidError(f"secret value for {key!r} must be a string")
        ciphertext = self._fernet.encrypt(json.dumps(values).encode()).decode()
        now = time.time()
        with self.store.session() as s, s.begin():
            row = s.get(SecretRow, name)
            if row is not None and not overwrite and not name.startswith(INLINE_PREFIX):
                raise InvalidError(f"secret {name!r} already exists; pass --force (overwrite=True) to replace it")
            if row is None:
                s.add(SecretRow(name=name, keys=sorted(values), ciphertext=ciphertext, created_at=now, updated_at=now))
            else:
                row.keys, row.ciphertext, row.updated_at = sorted(values), ciphertext, now

    def list(self) -> list[dict[str, Any]]:
        with self.store.session() as s:
            rows = s.scalars(select(SecretRow).order_by(SecretRow.name))
            return [{"name": r.name, "keys": r.keys, "created_at": r.created_at, "updated_at": r.updated_at}
                    for r in rows if not r.name.startswith(_INTERNAL)]

    def delete(self, name: str) -> None:
        check_secret_name(name)
        with self.store.session() as s, s.begin():
            if rowcount(s.execute(delete(SecretRow).where(SecretRow.name == name))) == 0:
                raise NotFoundError(self._missing(s, name))

    def reveal(self, name: str, required_keys: builtins.list[str]) -> dict[str, str]:
        """Decrypt for injection into a container; checks ``required_keys``."""
        with self.store.session() as s:
            row = s.get(SecretRow, name)
            if row is None:
                raise NotFoundError(self._missing(s, name))
            values: dict[str, str] = json.loads(self._fernet.decrypt(row.ciphertext.encode()))
        missing = [k for k in required_keys if k not in values]
        if missing:
            raise NotFoundError(f"secret {name!r} is missing required key(s) {missing}; it has {sorted(values)}")
        return values

    def _missing(self, s: Session, name: str) -> str:
        names = [n for n in s.scalars(select(SecretRow.name)) if not n.startswith(_INTERNAL)]
        return f"no secret named {name!r}; secrets that exist: {', '.join(sorted(names)) or 'none'}"
