"""Dicts and Queues: named, persistent, holding cloudpickled values as bytes.

The server never unpickles them; keys are compared by the sha256 of their pickle.
Queue ``get`` waits on an in-memory event per queue, so a blocked reader wakes the moment
an item is put (no polling).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..protocol.errors import ConflictError, InvalidError, NotFoundError
from ..protocol.names import check_name
from .store import Store
from .store.database import rowcount
from .store.models import DictEntryRow, DictRow, QueueItemRow, QueueRow

MAX_DICT_VALUE = 16 * 1024 * 1024
MAX_QUEUE_ITEM = 1024 * 1024
MAX_PARTITION = 200


def _too_big(what: str, size: int, limit: int) -> InvalidError:
    return InvalidError(f"{what} is {size:,} bytes pickled; the limit is {limit:,}. Store big data in a Volume.")


def _ensure(store: Store, row_type: type[DictRow] | type[QueueRow], kind: str, name: str, create: bool) -> None:
    """Check a named object exists, creating it if asked; a missing one's error lists those that do."""
    check_name(kind, name)
    with store.session() as s, s.begin():
        if s.get(row_type, name) is None:
            if not create:
                names = list(s.scalars(select(row_type.name)))
                raise NotFoundError(f"no {kind} named {name!r}; {kind}s that exist: {', '.join(names) or 'none'}")
            s.add(row_type(name=name, created_at=time.time()))


def _require(s: Session, row_type: type[DictRow] | type[QueueRow], kind: str, name: str) -> None:
    """A NotFoundError for an object that does not exist (or was deleted meanwhile)."""
    if s.get(row_type, name) is None:
        raise NotFoundError(f"no {kind} named {name!r} (it was deleted, or never made: "
                            f"`{kind.capitalize()}.from_name(..., create_if_missing=True)` makes it)")


@contextmanager
def _write(store: Store, row_type: type[DictRow] | type[QueueRow], kind: str, name: str) -> Iterator[Session]:
    """A transaction that writes into an existing object; one deleted while it ran is a
    NotFoundError, not a broken foreign key."""
    try:
        with store.session() as s, s.begin():
            _require(s, row_type, kind, name)
            yield s
    except IntegrityError:
        with store.session() as s:
            _require(s, row_type, kind, name)  # deleted meanwhile: a NotFoundError
        raise ConflictError(f"{kind} {name!r}: another write to the same key won the race; try again") from None


class DictStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def ensure(self, name: str, create: bool) -> None:
        _ensure(self.store, DictRow, "dict", name, create)

    def list(self) -> list[str]:
        with self.store.session() as s:
            return list(s.scalars(select(DictRow.name).order_by(DictRow.name)))

    def delete(self, name: str) -> None:
        with self.store.session() as s, s.begin():
            s.execute(delete(DictEntryRow).where(DictEntryRow.dict_name == name))
            if rowcount(s.execute(delete(DictRow).where(DictRow.name == name))) == 0:
                raise NotFoundError(f"no dict named {name!r}")

    def put(self, name: str, items: builtins.list[tuple[bytes, bytes]], skip_if_exists: bool) -> int:
        """Store items; returns how many were written."""
        written = 0
        with _write(self.store, DictRow, "dict", name) as s:
            for key, value in items:
                if len(value) > MAX_DICT_VALUE:
                    raise _too_big("a Dict value", len(value), MAX_DICT_VALUE)
                h = hashlib.sha256(key).hexdigest()
                row = s.get(DictEntryRow, (name, h))
                if row is not None and skip_if_exists:
                    continue
                if row is None:
                    s.add(DictEntryRow(dict_name=name, key_hash=h, key=key, value=value, updated_at=time.time()))
                else:
                    row.value, row.updated_at = value, time.time()
                written += 1
        return written

    def get(self, name: str, key: bytes) -> bytes | None:
        with self.store.session() as s:
            _require(s, DictRow, "dict", name)
            row = s.get(DictEntryRow, (name, hashlib.sha256(key).hexdigest()))
            return None if row is None else row.value

    def pop(self, name: str, key: bytes) -> bytes | None:
        with _write(self.store, DictRow, "dict", name) as s:
            row = s.get(DictEntryRow, (name, hashlib.sha256(key).hexdigest()))
            if row is None:
                return None
            value = row.value
            s.delete(row)
            return value

    def length(self, name: str) -> int:
        with self.store.session() as s:
            _require(s, DictRow, "dict", name)
            return s.scalar(select(func.count()).where(DictEntryRow.dict_name == name)) or 0

    def items(self, name: str) -> builtins.list[tuple[bytes, bytes]]:
        with self.store.session() as s:
            _require(s, DictRow, "dict", name)
            rows = s.execute(select(DictEntryRow.key, DictEntryRow.value).where(DictEntryRow.dict_name == name)
                             .order_by(DictEntryRow.updated_at))
            return [(k, v) for k, v in rows]

    def clear(self, name: str) -> None:
        with _write(self.store, DictRow, "dict", name) as s:
            s.execute(delete(DictEntryRow).where(DictEntryRow.dict_name == name))


class QueueStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._events: dict[tuple[str, str], asyncio.Event] = defaultdict(asyncio.Event)

    def ensure(self, name: str, create: bool) -> None:
        _ensure(self.store, QueueRow, "queue", name, create)

    def list(self) -> list[str]:
        with self.store.session() as s:
            return list(s.scalars(select(QueueRow.name).order_by(QueueRow.name)))

    def delete(self, name: str) -> None:
        with self.store.session() as s, s.begin():
            s.execute(delete(QueueItemRow).where(QueueItemRow.queue_name == name))
            if rowcount(s.execute(delete(QueueRow).where(QueueRow.name == name))) == 0:
                raise NotFoundError(f"no queue named {name!r}")

    def _put(self, name: str, partition: str, values: builtins.list[bytes]) -> None:
        now = time.time()
        with _write(self.store, QueueRow, "queue", name) as s:
            s.add_all([QueueItemRow(queue_name=name, partition=partition, value=v, created_at=now) for v in values])

    async def put(self, name: str, partition: str, values: builtins.list[bytes]) -> None:
        if len(partition) > MAX_PARTITION:
            raise InvalidError(f"queue partition names are at most {MAX_PARTITION} characters")
        for v in values:
            if len(v) > MAX_QUEUE_ITEM:
                raise _too_big("a Queue item", len(v), MAX_QUEUE_ITEM)
        await self.store.run(self._put, name, partition, values)
        event = self._events.pop((name, partition), None)
        if event is not None:
            event.set()

    def _take(self, name: str, partition: str, n: int) -> builtins.list[bytes]:
        with _write(self.store, QueueRow, "queue", name) as s:
            rows = list(s.scalars(
                select(QueueItemRow).where(QueueItemRow.queue_name == name, QueueItemRow.partition == partition)
                .order_by(QueueItemRow.id).limit(n)
            ))
            for row in rows:
                s.delete(row)
            return [r.value for r in rows]

    async def get(self, name: str, partition: str, n: int, timeout: float) -> builtins.list[bytes]:
        """Up to ``n`` items, waiting up to ``timeout`` seconds for the first."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._events[(name, partition)]
            items = await self.store.run(self._take, name, partition, n)
            remaining = deadline - time.monotonic()
            if items or remaining <= 0:
                return items
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    def length(self, name: str, partition: str | None) -> int:
        with self.store.session() as s:
            _require(s, QueueRow, "queue", name)
            q = select(func.count()).where(QueueItemRow.queue_name == name)
            if partition is not None:
                q = q.where(QueueItemRow.partition == partition)
            return s.scalar(q) or 0

    def peek(self, name: str, partition: str, after_id: int, n: int) -> builtins.list[tuple[int, bytes]]:
        with self.store.session() as s:
            _require(s, QueueRow, "queue", name)
            rows = s.execute(
                select(QueueItemRow.id, QueueItemRow.value)
                .where(QueueItemRow.queue_name == name, QueueItemRow.partition == partition, QueueItemRow.id > after_id)
                .order_by(QueueItemRow.id).limit(n)
            )
            return [(i, v) for i, v in rows]

    def clear(self, name: str, partition: str | None) -> None:
        with _write(self.store, QueueRow, "queue", name) as s:
            q = delete(QueueItemRow).where(QueueItemRow.queue_name == name)
            if partition is not None:
                q = q.where(QueueItemRow.partition == partition)
            s.execute(q)
