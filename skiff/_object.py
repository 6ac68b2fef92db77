"""Named server objects (Volume, Dict, Queue): lazy handles resolved on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .protocol.names import check_name
from .protocol.wire import Ensure, encode

if TYPE_CHECKING:
    from ._client import Client


class NamedObject:
    """A handle on a server object by name. ``from_name`` makes no request; the first
    operation checks the object exists (or creates it with ``create_if_missing=True``)."""

    _kind = "object"
    _route = "objects"

    def __init__(self, name: str, create_if_missing: bool = False) -> None:
        self.name = check_name(self._kind, name)
        self._create = create_if_missing
        self._resolved = False

    def __repr__(self) -> str:
        return f"<skiff.{type(self).__name__} {self.name!r}>"

    async def _ensure(self) -> dict[str, Any]:
        from ._client import get_client

        client = await get_client()
        result = await client.request("POST", f"/{self._route}/{self.name}", json=encode(Ensure(create_if_missing=self._create)))
        self._resolved = True
        return result or {}

    async def _client(self) -> Client:
        from ._client import get_client

        if not self._resolved:
            await self._ensure()
        return await get_client()
