"""The volume transfer format: how a volume's files travel, block by block.

A file's content is a list of blocks of ``BLOCK`` bytes, every one but the last exactly
that size (an empty file is one empty block), each a blob named by its own sha256. A
manifest entry is ``{"blocks": [...], "size": ..., "mode": ...}``; entries from before
blocks name one blob for the whole file (``sha256``) and read as a file of one block
(:func:`entry_blocks`).

Small files' blocks travel many to a request, in a body made by :func:`pack_blobs` (at
most ``BATCH_BYTES`` and ``BATCH_BLOBS``). On the server's own machine the local channel
is a SOCK_SEQPACKET socket whose messages are JSON with file descriptors attached
(:func:`send_message`, :func:`recv_message`). The engines on each side are
``skiff._volume_transfer`` (SDK and container) and ``skiff.server.volumes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .errors import InvalidError

CHUNK = 1 << 20  # bytes read at a time where a whole file streams (the server's file route)
BLOCK = 8 << 20  # bytes per block; every block of a file but its last has exactly this size
SMALL_FILE = 1 << 20  # files below this travel many to a request
BATCH_BYTES = 16 << 20  # at most this much file content in one batched request
BATCH_BLOBS = 2000  # and at most this many blobs
PARALLEL = 4  # block requests in flight at once
MAX_FDS = 250  # descriptors in one message of the local channel (the kernel allows 253)
HELLO_TIMEOUT = 5.0  # seconds to reach the local channel before HTTP is used instead

OnBytes = Callable[[int], Any] | None


def entry_blocks(entry: dict[str, Any]) -> list[str]:
    """The blob ids of a manifest entry's content, in order. Entries committed before
    files were split into blocks name a single blob that holds the whole file."""
    blocks = entry.get("blocks")
    return list(blocks) if blocks else [entry["sha256"]]


def block_spans(size: int, count: int) -> list[tuple[int, int]]:
    """(offset, length) of each of ``count`` blocks of a ``size``-byte file."""
    if count == 1:
        return [(0, size)]
    return [(i * BLOCK, min(BLOCK, size - i * BLOCK)) for i in range(count)]


_pool: ThreadPoolExecutor | None = None
_buffers = threading.local()


def block_pool() -> ThreadPoolExecutor:
    """Threads that hash and copy blocks: hashlib and os.pread release the GIL on large
    buffers, so blocks of one file hash on every core at once."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="skiff-blocks")
    return _pool


def block_buffer() -> bytearray:
    """This thread's block buffer, reused so that reading a block allocates nothing."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(BLOCK)
    return buf


def read_block(fd: int, offset: int, length: int) -> memoryview:
    """``length`` bytes at ``offset`` into this thread's buffer (valid until its next call)."""
    view = memoryview(block_buffer())[:length]
    got = 0
    while got < length:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise InvalidError("a file shrank while it was read; write it completely, then send it again")
        got += n
    return view


def hash_blocks(path: Path) -> tuple[int, list[str]]:
    """The file's size and the sha256 of each of its blocks (blocking; parallel)."""
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        spans = block_spans(size, max(1, -(-size // BLOCK)))

        def one(span: tuple[int, int]) -> str:
            return hashlib.sha256(read_block(fd, *span)).hexdigest()

        if len(spans) == 1:
            return size, [one(spans[0])]
        return size, list(block_pool().map(one, spans))


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of a local file: its blocks, size and permission bits."""
    size, blocks = hash_blocks(path)
    return {"blocks": blocks, "size": size, "mode": stat.S_IMODE(path.stat().st_mode)}


# -- framing shared with the server ------------------------------------------------------


def pack_blobs(header: dict[str, Any], parts: Sequence[bytes | memoryview]) -> bytes:
    """One request or response body carrying several blobs: a 4-byte length, a JSON
    header, then the blobs' bytes back to back."""
    head = json.dumps(header).encode()
    return b"".join([struct.pack(">I", len(head)), head, *parts])


def unpack_blobs(body: bytes, what: str) -> tuple[dict[str, Any], memoryview]:
    """(header, the bytes after it) of a body made by :func:`pack_blobs`."""
    if len(body) < 4 or len(body) < 4 + struct.unpack(">I", body[:4])[0]:
        raise InvalidError(f"{what}: the body must be a 4-byte length, a JSON header and the blobs' bytes")
    n = struct.unpack(">I", body[:4])[0]
    try:
        header = json.loads(body[4:4 + n])
    except ValueError:
        raise InvalidError(f"{what}: the header after the 4-byte length is not JSON") from None
    if not isinstance(header, dict):
        raise InvalidError(f"{what}: the header must be a JSON object")
    return header, memoryview(body)[4 + n:]


def send_message(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """One message on the local channel (a SOCK_SEQPACKET socket keeps message bounds):
    JSON, with file descriptors attached."""
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def recv_message(sock: socket.socket, max_fds: int = MAX_FDS) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, max_fds)
    if not data:
        for fd in fds:
            os.close(fd)
        raise ConnectionResetError("the local channel closed")
    return json.loads(data), fds
