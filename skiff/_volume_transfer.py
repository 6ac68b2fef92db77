"""Moving volume files between a client and the server, block by block.

The engine under :mod:`skiff.volume` and ``skiff volume put``/``get``; the format it
shares with the server (:mod:`skiff.server.volumes`) is :mod:`skiff.protocol.volumes`.
Containers import it, so it needs only the standard library.

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
import os
import socket
import stat
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .exception import InvalidError
from .protocol.volumes import (
    BATCH_BLOBS,
    BATCH_BYTES,
    HELLO_TIMEOUT,
    MAX_FDS,
    PARALLEL,
    SMALL_FILE,
    block_buffer,
    block_pool,
    block_spans,
    entry_blocks,
    file_entry,
    pack_blobs,
    read_block,
    recv_message,
    send_message,
    unpack_blobs,
)
from .protocol.wire import BlobsMissing, encode

if TYPE_CHECKING:
    from ._client import Client

OnBytes = Callable[[int], Any] | None
_Item = TypeVar("_Item", bound=tuple[Any, ...])


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
    async def for_client(client: Client) -> LocalChannel | None:
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

    def _call(self, message: dict[str, Any], fds: Sequence[int] = ()) -> tuple[dict[str, Any], list[int]]:
        send_message(self.sock, {**message, "token": self.token}, fds)
        return self._reply()

    def _reply(self) -> tuple[dict[str, Any], list[int]]:
        reply, fds = recv_message(self.sock)
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            raise InvalidError(reply["error"])
        return reply, fds

    def store_file(self, path: Path, on_bytes: OnBytes = None) -> dict[str, Any]:
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

        def copy(args: tuple[int, int, int, int]) -> None:  # (src, dst, offset, length)
            _copy_range(*args, on_bytes)

        with self.lock:
            for i in range(0, len(jobs), MAX_FDS):
                part = jobs[i:i + MAX_FDS]
                reply, fds = self._call({"op": "open", "blob_ids": [job[2] for job in part]})
                try:
                    for (_fd, _off, blob_id, length), size in zip(part, reply["sizes"], strict=True):
                        if size != length:
                            raise InvalidError(f"blob {blob_id} has {size} bytes, not the {length} its manifest says")
                    list(block_pool().map(copy, [(src, job[0], job[1], job[3])
                                                 for src, job in zip(fds, part, strict=True)]))
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


async def upload_files(client: Client, files: list[tuple[Path, dict[str, Any]]], on_bytes: OnBytes = None) -> None:
    """Send the server the blocks of these (path, manifest entry) files that it lacks.

    Small files go many to a request, the blocks of large ones in parallel; a block the
    server has is never sent again (``on_bytes`` still counts it)."""
    wanted = sorted({b for _, entry in files for b in entry["blocks"]})
    missing: set[str] = set()
    for i in range(0, len(wanted), 10_000):
        part = wanted[i:i + 10_000]
        missing |= set((await client.request("POST", "/volume-blobs/missing", json=encode(BlobsMissing(blob_ids=part))))["blob_ids"])
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
        parts = await asyncio.to_thread(_read_files, batch)
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


def _read_files(batch: list[tuple[str, Path, int]]) -> list[bytes | memoryview]:  # the parts pack_blobs takes
    """The content of a batch's (blob id, path, length) files, each read whole."""
    return [p.read_bytes() for _, p, _ in batch]


def _send_block(client: Client, blob_id: str, path: Path, offset: int, length: int) -> None:
    with open(path, "rb") as f:
        client.put_body(f"/volume-blobs/{blob_id}", read_block(f.fileno(), offset, length))


def _fetch_block(client: Client, fd: int, offset: int, blob_id: str, length: int) -> None:
    got = client.fetch_into(f"/volume-blobs/{blob_id}", fd, offset, block_buffer())
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


def _batches(items: list[_Item]) -> list[list[_Item]]:
    """Split (blob id, ..., length) items into groups of at most BATCH_BYTES / BATCH_BLOBS."""
    out: list[list[_Item]] = []
    held = 0
    for item in items:
        if not out or held + item[-1] > BATCH_BYTES or len(out[-1]) >= BATCH_BLOBS:
            out.append([])
            held = 0
        out[-1].append(item)
        held += item[-1]
    return out


async def _all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines together; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()


async def store_files(client: Client, paths: list[Path], on_bytes: OnBytes = None) -> list[dict[str, Any]]:
    """Make sure the server holds these local files' content; their manifest entries.

    On the server's machine the local channel stores them without hashing here; elsewhere
    they are hashed here and only the blocks the server lacks are uploaded."""
    channel = await LocalChannel.for_client(client)
    entries: dict[Path, dict[str, Any]] = {}
    if channel is not None:  # large files; small ones are cheaper many to an HTTP request
        for p in paths:
            if p not in entries and p.stat().st_size >= SMALL_FILE:
                entries[p] = await asyncio.to_thread(channel.store_file, p, on_bytes)
    rest = [p for p in dict.fromkeys(paths) if p not in entries]
    hashed = await asyncio.to_thread(lambda: [file_entry(p) for p in rest])
    await upload_files(client, list(zip(rest, hashed, strict=True)), on_bytes)
    entries.update(zip(rest, hashed, strict=True))
    return [entries[p] for p in paths]


async def download_files(client: Client, files: list[tuple[dict[str, Any], Path]], on_bytes: OnBytes = None) -> None:
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
            body = await client.request("POST", "/volume-blobs/download", json=encode(BlobsMissing(blob_ids=[j[2] for j in batch])))
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
