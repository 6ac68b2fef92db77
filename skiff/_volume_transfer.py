"""Moving volume files between a client and the server, block by block.

The engine under :mod:`skiff.volume` and ``skiff volume put``/``get``; the server
(:mod:`skiff.server.volumes`, :mod:`skiff.server.api.storage`) shares its sizes and
framing. Containers import it, so it needs only the standard library (and
:mod:`skiff.exception`).

Blocks: a file's content is a list of blocks of ``BLOCK`` bytes, every one but the last
exactly that size (an empty file is one empty block), each a blob named by its own
sha256. A manifest entry is ``{"blocks": [...], "size": ..., "mode": ...}``; entries
from before blocks name one blob for the whole file (``sha256``) and read as a file of
one block (:func:`entry_blocks`). Blocks let a large file hash on several cores at once
(``hashlib`` and ``os.preadv`` release the GIL), move a few at a time with memory flat
at one block buffer per thread, and let a block the server holds never travel again.

Over HTTP (from anywhere): the client hashes the blocks, asks the server once which it
lacks (``POST /volume-blobs/missing``) and sends only those. Blocks of small files
(under ``SMALL_FILE``) go many to a request, in a body made by :func:`pack_blobs`
(``POST /volume-blobs/upload``, at most ``BATCH_BYTES`` and ``BATCH_BLOBS``); blocks of
large files go ``PARALLEL`` at a time, one ``PUT /volume-blobs/<id>`` each. Reading
mirrors it: ``POST /volume-blobs/download`` for small files, ``GET /volume-blobs/<id>``
for each block of a large one, written straight into the file at its offset. The server
checks every blob against its id.

On the server's machine (a Unix socket): over HTTP every byte is copied through the
client, a socket and the server, and hashed on both sides. When the client can reach
the server's local-transfer socket (``GET /volume-blobs/local`` names it),
:class:`LocalChannel` passes file descriptors instead of bytes. To store a large file
the client sends a read-only descriptor of it and the server reads, hashes and stores the
blocks itself, so nothing is hashed twice and the ids are the server's own (small files
still go many to an HTTP request, cheaper than a message each). To read, the server sends
read-only descriptors of the blobs and the client copies them with ``copy_file_range``,
inside the kernel. Where the socket cannot be reached (another machine, a container,
``SKIFF_VOLUME_LOCAL=0``), everything goes over HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .exception import InvalidError

CHUNK = 1 << 20  # bytes read at a time where a whole file streams (the server's file route)
BLOCK = 8 << 20  # bytes per block; every block of a file but its last has exactly this size
SMALL_FILE = 1 << 20  # files below this travel many to a request
BATCH_BYTES = 16 << 20  # at most this much file content in one batched request
BATCH_BLOBS = 2000  # and at most this many blobs
PARALLEL = 4  # block requests in flight at once
MAX_FDS = 250  # descriptors in one message of the local channel (the kernel allows 253)
HELLO_TIMEOUT = 5.0  # seconds to reach the local channel before HTTP is used instead

OnBytes = Callable[[int], Any] | None


def entry_blocks(entry: dict) -> list[str]:
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


def _hash_pool() -> ThreadPoolExecutor:
    """Threads that hash and copy blocks: hashlib and os.pread release the GIL on large
    buffers, so blocks of one file hash on every core at once."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="skiff-blocks")
    return _pool


def _buffer() -> bytearray:
    """This thread's block buffer, reused so that reading a block allocates nothing."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(BLOCK)
    return buf


def read_block(fd: int, offset: int, length: int) -> memoryview:
    """``length`` bytes at ``offset`` into this thread's buffer (valid until its next call)."""
    view = memoryview(_buffer())[:length]
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
        return size, list(_hash_pool().map(one, spans))


def file_entry(path: Path) -> dict:
    """The manifest entry of a local file: its blocks, size and permission bits."""
    size, blocks = hash_blocks(path)
    return {"blocks": blocks, "size": size, "mode": stat.S_IMODE(path.stat().st_mode)}


# -- framing shared with the server ------------------------------------------------------


def pack_blobs(header: dict, parts: list[bytes | memoryview]) -> bytes:
    """One request or response body carrying several blobs: a 4-byte length, a JSON
    header, then the blobs' bytes back to back."""
    head = json.dumps(header).encode()
    return b"".join([struct.pack(">I", len(head)), head, *parts])


def unpack_blobs(body: bytes, what: str) -> tuple[dict, memoryview]:
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


def send_message(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:  # type: ignore[assignment]
    """One message on the local channel (a SOCK_SEQPACKET socket keeps message bounds):
    JSON, with file descriptors attached."""
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def recv_message(sock: socket.socket, max_fds: int = MAX_FDS) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, max_fds)
    if not data:
        for fd in fds:
            os.close(fd)
        raise ConnectionResetError("the local channel closed")
    return json.loads(data), fds


# -- moving blocks -------------------------------------------------------------------------


class LocalChannel:
    """Same-machine transfers through the server's local-transfer socket.

    To store a file, the client sends a read-only descriptor of it; the server copies and
    hashes the blocks itself, so the client hashes nothing and the ids are the server's
    own. To read, the server sends read-only descriptors of the blobs and the client
    copies them with ``copy_file_range``, inside the kernel. Each side can only use what
    it could open itself; every message carries the API token. Where the socket cannot
    be reached (another machine, a container, ``SKIFF_VOLUME_LOCAL=0``), HTTP is used.
    """

    def __init__(self, sock: socket.socket, token: str) -> None:
        self.sock = sock
        self.token = token
        self.lock = threading.Lock()

    @staticmethod
    async def for_client(client: Any) -> LocalChannel | None:
        """The client's channel, opened on first use; None where there is none."""
        channel = getattr(client, "_volume_channel", None)
        if channel is not None:
            return channel or None
        channel = None
        if os.environ.get("SKIFF_VOLUME_LOCAL", "1") not in ("0", "false", "no"):
            try:
                res = await client.request("GET", "/volume-blobs/local")
                channel = await asyncio.to_thread(LocalChannel._open, res["socket"], client.token or "")
            except Exception:  # an older server, another machine: HTTP it is
                channel = None
        client._volume_channel = channel or False
        return channel

    @staticmethod
    def _open(path: str, token: str) -> LocalChannel | None:
        if not os.path.exists(path):
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.settimeout(HELLO_TIMEOUT)  # a listener that does not answer at once is not used
        try:
            sock.connect(path)
            channel = LocalChannel(sock, token)
            channel._call({"op": "hello"})
            sock.settimeout(600)
            return channel
        except Exception:
            sock.close()
            return None

    def close(self) -> None:
        self.sock.close()

    def _call(self, message: dict, fds: list[int] = ()) -> tuple[dict, list[int]]:  # type: ignore[assignment]
        send_message(self.sock, {**message, "token": self.token}, fds)
        return self._reply()

    def _reply(self) -> tuple[dict, list[int]]:
        reply, fds = recv_message(self.sock)
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            raise InvalidError(reply["error"])
        return reply, fds

    def store_file(self, path: Path, on_bytes: OnBytes = None) -> dict:
        """Have the server store the file's blocks (blocking); returns its manifest entry."""
        with self.lock, open(path, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            send_message(self.sock, {"op": "store", "token": self.token}, [f.fileno()])
            while True:
                reply, _ = self._reply()
                if "done" in reply:
                    return {"blocks": reply["blocks"], "size": reply["size"], "mode": mode}
                if on_bytes:
                    on_bytes(reply["bytes"])

    def copy_out(self, jobs: list[tuple[int, int, str, int]], on_bytes: OnBytes = None) -> None:
        """Copy blobs into open files (blocking): each job is (fd, offset, blob id, length)."""
        with self.lock:
            for i in range(0, len(jobs), MAX_FDS):
                part = jobs[i:i + MAX_FDS]
                reply, fds = self._call({"op": "open", "blob_ids": [job[2] for job in part]})
                try:
                    for (_fd, _off, blob_id, length), size in zip(part, reply["sizes"], strict=True):
                        if size != length:
                            raise InvalidError(f"blob {blob_id} has {size} bytes, not the {length} its manifest says")
                    list(_hash_pool().map(lambda args: _copy_range(*args, on_bytes),
                                          [(src, job[0], job[1], job[3]) for src, job in zip(fds, part, strict=True)]))
                finally:
                    for fd in fds:
                        os.close(fd)


def _copy_range(src: int, dst: int, offset: int, length: int, on_bytes: OnBytes) -> None:
    copied = 0
    while copied < length:
        n = os.copy_file_range(src, dst, length - copied, copied, offset + copied)
        if n == 0:
            raise InvalidError("a blob ended before its length; the volume store is damaged")
        copied += n
        if on_bytes:
            on_bytes(n)


async def upload_files(client: Any, files: list[tuple[Path, dict]], on_bytes: OnBytes = None) -> None:
    """Send the server the blocks of these (path, manifest entry) files that it lacks.

    Small files go many to a request, the blocks of large ones in parallel; a block the
    server has is never sent again (``on_bytes`` still counts it)."""
    wanted = sorted({b for _, entry in files for b in entry["blocks"]})
    missing: set[str] = set()
    for i in range(0, len(wanted), 10_000):
        part = wanted[i:i + 10_000]
        missing |= set((await client.request("POST", "/volume-blobs/missing", json={"blob_ids": part}))["blob_ids"])
    small: list[tuple[str, Path, int]] = []
    large: list[tuple[str, Path, int, int]] = []
    for path, entry in files:
        for blob_id, (offset, length) in zip(entry["blocks"], block_spans(entry["size"], len(entry["blocks"])),
                                             strict=True):
            if blob_id not in missing:
                if on_bytes:
                    on_bytes(length)
            elif entry["size"] < SMALL_FILE:
                small.append((blob_id, path, length))
            else:
                large.append((blob_id, path, offset, length))
            missing.discard(blob_id)  # the same content twice is sent once
    for batch in _batches(small):
        parts = await asyncio.to_thread(lambda b=batch: [p.read_bytes() for _, p, _ in b])
        for (_blob_id, path, length), data in zip(batch, parts, strict=True):
            if len(data) != length:
                raise InvalidError(f"{path} changed while it was being uploaded; upload it again")
        body = pack_blobs({"blobs": [[b, len(d)] for (b, _, _), d in zip(batch, parts, strict=True)]}, parts)
        await client.request("POST", "/volume-blobs/upload", content=body)
        if on_bytes:
            on_bytes(sum(length for _, _, length in batch))

    async def send(blob_id: str, path: Path, offset: int, length: int) -> None:
        await _in_transfer_thread(_send_block, client, blob_id, path, offset, length)
        if on_bytes:
            on_bytes(length)

    await _all([send(*job) for job in large])


def _send_block(client: Any, blob_id: str, path: Path, offset: int, length: int) -> None:
    with open(path, "rb") as f:
        client.put_body(f"/volume-blobs/{blob_id}", read_block(f.fileno(), offset, length))


def _fetch_block(client: Any, fd: int, offset: int, blob_id: str, length: int) -> None:
    got = client.fetch_into(f"/volume-blobs/{blob_id}", fd, offset, _buffer())
    if got != length:
        raise InvalidError(f"blob {blob_id} has {got} bytes, not the {length} its manifest says")


_transfers: ThreadPoolExecutor | None = None


async def _in_transfer_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking block transfer on one of PARALLEL threads, each with its own
    connection and block buffer: that many blocks move at once, and memory stays flat."""
    global _transfers
    if _transfers is None:
        _transfers = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="skiff-transfer")
    return await asyncio.get_running_loop().run_in_executor(_transfers, fn, *args)


def _batches(items: list) -> list[list]:
    """Split (blob id, ..., length) items into groups of at most BATCH_BYTES / BATCH_BLOBS."""
    out: list[list] = []
    held = 0
    for item in items:
        if not out or held + item[-1] > BATCH_BYTES or len(out[-1]) >= BATCH_BLOBS:
            out.append([])
            held = 0
        out[-1].append(item)
        held += item[-1]
    return out


async def _all(coros: list) -> None:
    """Run coroutines together; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()


async def store_files(client: Any, paths: list[Path], on_bytes: OnBytes = None) -> list[dict]:
    """Make sure the server holds these local files' content; their manifest entries.

    On the server's machine the local channel stores them without hashing here; elsewhere
    they are hashed here and only the blocks the server lacks are uploaded."""
    channel = await LocalChannel.for_client(client)
    entries: dict[Path, dict] = {}
    if channel is not None:  # large files; small ones are cheaper many to an HTTP request
        for p in paths:
            if p not in entries and p.stat().st_size >= SMALL_FILE:
                entries[p] = await asyncio.to_thread(channel.store_file, p, on_bytes)
    rest = [p for p in dict.fromkeys(paths) if p not in entries]
    hashed = await asyncio.to_thread(lambda: [file_entry(p) for p in rest])
    await upload_files(client, list(zip(rest, hashed, strict=True)), on_bytes)
    entries.update(zip(rest, hashed, strict=True))
    return [entries[p] for p in paths]


async def download_files(client: Any, files: list[tuple[dict, Path]], on_bytes: OnBytes = None) -> None:
    """Write each (manifest entry, local path) file's content to its path (created or
    truncated): through the local channel when there is one, else small files many to a
    request and the blocks of large files in parallel, each written at its offset."""
    fds: dict[Path, int] = {}
    try:
        jobs: list[tuple[int, int, str, int]] = []
        for entry, path in files:
            fd = fds[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            blocks = entry_blocks(entry)
            os.ftruncate(fd, entry["size"])
            for blob_id, (offset, length) in zip(blocks, block_spans(entry["size"], len(blocks)), strict=True):
                if length:
                    jobs.append((fd, offset, blob_id, length))
        channel = await LocalChannel.for_client(client)
        if channel is not None:
            await asyncio.to_thread(channel.copy_out, jobs, on_bytes)
            return
        small = [job for job in jobs if job[3] < SMALL_FILE and job[1] == 0]
        large = [job for job in jobs if not (job[3] < SMALL_FILE and job[1] == 0)]
        for batch in _batches(small):
            body = await client.request("POST", "/volume-blobs/download", json={"blob_ids": [j[2] for j in batch]})
            await asyncio.to_thread(_write_batch, body, batch)
            if on_bytes:
                on_bytes(sum(j[3] for j in batch))

        async def fetch(fd: int, offset: int, blob_id: str, length: int) -> None:
            await _in_transfer_thread(_fetch_block, client, fd, offset, blob_id, length)
            if on_bytes:
                on_bytes(length)

        await _all([fetch(*job) for job in large])
    finally:
        for fd in fds.values():
            os.close(fd)


def _write_batch(body: bytes, batch: list[tuple[int, int, str, int]]) -> None:
    header, data = unpack_blobs(body, "volume blob download")
    at = 0
    for (fd, offset, blob_id, length), size in zip(batch, header["sizes"], strict=True):
        if size != length:
            raise InvalidError(f"blob {blob_id} has {size} bytes, not the {length} its manifest says")
        view = data[at:at + size]
        while view:
            view = view[os.pwrite(fd, view, offset + (size - len(view))):]
        at += size
