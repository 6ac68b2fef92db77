"""``Dict``: a named, persistent key-value store shared by functions and clients.

```python
d = skiff.Dict.from_name("cache", create_if_missing=True)
d["answer"] = 42
d.get("answer")          # 42
```
Keys and values are cloudpickled; keys compare by their pickle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ._object import NamedObject
from ._sync import dual
from .protocol import serialization as ser
from .protocol.wire import DictKey, DictPut, encode

__all__ = ["Dict"]

_MISSING = object()


class Dict(NamedObject):
    _kind = "dict"
    _route = "dicts"

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False) -> Dict:
        return Dict(name, create_if_missing)

    @dual
    async def get(self, key: Any, default: Any = None) -> Any:
        client = await self._client()
        res = await client.request("POST", f"/dicts/{self.name}/get", json=encode(DictKey(key=ser.b64(ser.serialize(key)))))
        return ser.deserialize(ser.unb64(res["value"])) if res["found"] else default

    @dual
    async def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Store ``value``; with ``skip_if_exists`` an existing key is left alone.
        Returns whether the value was written."""
        client = await self._client()
        item = [ser.b64(ser.serialize(key)), ser.b64(ser.serialize(value))]
        res = await client.request("POST", f"/dicts/{self.name}/put", json=encode(DictPut(items=[item], skip_if_exists=skip_if_exists)))
        written: int = res["written"]
        return written == 1

    @dual
    async def update(self, other: dict[Any, Any] | None = None, /, **kwargs: Any) -> None:
        items = {**(other or {}), **kwargs}
        client = await self._client()
        body = [[ser.b64(ser.serialize(k)), ser.b64(ser.serialize(v))] for k, v in items.items()]
        await client.request("POST", f"/dicts/{self.name}/put", json=encode(DictPut(items=body)))

    @dual
    async def pop(self, key: Any, default: Any = _MISSING) -> Any:
        client = await self._client()
        res = await client.request("POST", f"/dicts/{self.name}/pop", json=encode(DictKey(key=ser.b64(ser.serialize(key)))))
        if res["found"]:
            return ser.deserialize(ser.unb64(res["value"]))
        if default is _MISSING:
            raise KeyError(key)
        return default

    @dual
    async def contains(self, key: Any) -> bool:
        client = await self._client()
        res = await client.request("POST", f"/dicts/{self.name}/get", json=encode(DictKey(key=ser.b64(ser.serialize(key)))))
        found: bool = res["found"]
        return found

    @dual
    async def len(self) -> int:
        client = await self._client()
        n: int = (await client.request("GET", f"/dicts/{self.name}/len"))["len"]
        return n

    @dual
    async def clear(self) -> None:
        client = await self._client()
        await client.request("POST", f"/dicts/{self.name}/clear")

    async def _items(self) -> list[tuple[Any, Any]]:
        client = await self._client()
        res = await client.request("GET", f"/dicts/{self.name}/items")
        return [(ser.deserialize(ser.unb64(k)), ser.deserialize(ser.unb64(v))) for k, v in res["items"]]

    @dual
    async def items(self) -> AsyncIterator[tuple[Any, Any]]:
        for pair in await self._items():
            yield pair

    @dual
    async def keys(self) -> AsyncIterator[Any]:
        for k, _ in await self._items():
            yield k

    @dual
    async def values(self) -> AsyncIterator[Any]:
        for _, v in await self._items():
            yield v

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    # A dual method's blocking form is untyped (Any) to mypy, hence the typed locals.
    def __contains__(self, key: Any) -> bool:
        found: bool = self.contains(key)
        return found

    def __len__(self) -> int:
        n: int = self.len()
        return n
