"""How pickled values travel: one place that decides inline or blob, for every side.

A value up to ``INLINE_PAYLOAD_LIMIT`` bytes of pickle travels inline, base64 in
``Payload.data``; a bigger one is put in the blob store first and travels as its id.
The functions here do no I/O: :func:`pack` says what to upload, and
:func:`inline_bytes` says when the bytes must be fetched, so the SDK (async) and the
container (blocking) each move blobs their own way.

```python
payload, upload = pack(serialize(value))
if upload is not None:
    put_blob(payload.blob_id, upload)        # before the payload is sent
...
data = inline_bytes(payload)
if data is None:
    data = get_blob(payload.blob_id)
value = deserialize(data)
```
"""

from __future__ import annotations

from typing import Any

from . import serialization as ser
from .wire import Payload

INLINE_PAYLOAD_LIMIT = 2 * 1024 * 1024  # bytes of pickle; bigger goes through the blob store


def pack(data: bytes) -> tuple[Payload, bytes | None]:
    """The payload for pickled ``data``, and the bytes to put in the blob store under
    ``payload.blob_id`` before sending it (None when it travels inline)."""
    if len(data) > INLINE_PAYLOAD_LIMIT:
        return Payload(blob_id=ser.sha256(data)), data
    return Payload(data=ser.b64(data)), None


def inline(value: Any) -> Payload:
    """A small value (a call's empty arguments, class parameters) pickled inline."""
    return Payload(data=ser.b64(ser.serialize(value)))


def inline_bytes(payload: Payload) -> bytes | None:
    """The pickled bytes a payload carries, or None when they are in the blob store."""
    if payload.blob_id:
        return None
    return ser.unb64(payload.data or "")


def identity(payload: Payload) -> str:
    """A string that is equal for equal pickles: the blob id or the inline data."""
    return payload.blob_id or payload.data or ""


def failure_fields(exc: BaseException, traceback: bool = True) -> dict[str, Any]:
    """The fields of an output that carries ``exc``: the pickled exception (inline; an
    exception that cannot be rebuilt is left out), its type, message and traceback."""
    info = ser.describe_exception(exc)
    return {
        "result": Payload(data=ser.b64(info["pickled"])) if info["pickled"] else None,
        "exc_type": info["exc_type"],
        "exc_message": info["exc_message"],
        "traceback": info["traceback"] if traceback else None,
    }


def failure_exception(result: Payload | None, exc_type: str | None, message: str | None,
                      traceback: str | None) -> BaseException:
    """The exception to raise locally for an output that carries a failure."""
    pickled = inline_bytes(result) if result is not None else None
    return ser.rebuild_exception(pickled, exc_type, message, traceback)
