"""How the gateway talks to a web function's container: frames on a Unix socket.

Each web container listens on a socket in a directory the server shares with it. The
gateway keeps a few connections per container and sends one request at a time on each
(like HTTP/1.1 keep-alive, without its parsing): both ends are skiff, so a frame is a
kind byte, a 4-byte length and a payload.

A request is a ``HEAD`` (JSON: method, path, query, headers...) and its body as ``BODY``
frames, the last of them a ``LAST``. The answer is a ``HEAD`` (JSON: status, headers),
then ``BODY`` frames as the app streams them and a ``LAST``; or ``ERROR`` (JSON: the
app's exception) at any point. Marking the last chunk, rather than sending an end
marker after it, lets the gateway pass every chunk on the moment it arrives.

A websocket session is a ``HEAD`` with ``"type": "websocket"``, then ``WS`` frames (JSON
ASGI messages) both ways until the container sends ``END``; its connection is not reused.

Standard library only: the container side runs inside any image.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

HEAD, BODY, LAST, ERROR, WS, END = b"H", b"B", b"L", b"X", b"W", b"E"

FRAME_HEADER = struct.Struct(">cI")  # kind, payload length
SOCKET_NAME = "http.sock"
MAX_FRAME = 64 * 1024 * 1024


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return FRAME_HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: bytes, obj: Any) -> bytes:
    return frame(kind, json.dumps(obj, separators=(",", ":")).encode())


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The next (kind, payload); ``asyncio.IncompleteReadError`` when the peer is gone."""
    kind, size = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    if size > MAX_FRAME:
        raise ValueError(f"a web frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    return kind, (await reader.readexactly(size) if size else b"")


__all__ = ["BODY", "END", "ERROR", "FRAME_HEADER", "HEAD", "LAST", "SOCKET_NAME", "WS", "frame", "json_frame", "read_frame"]
