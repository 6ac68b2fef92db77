"""Content-addressed blob store on local disk: code files and large payloads, by sha256."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ..protocol.errors import InvalidError, NotFoundError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# A streamed upload is hashed and written in batches of this many bytes on a worker
# thread, while the event loop receives the next batch: receiving, hashing and writing
# overlap, and the loop stays free for other requests.
STREAM_BATCH = 4 << 20


def check_blob_id(blob_id: str) -> str:
    if not _SHA256.match(blob_id):
        raise InvalidError(f"blob id must be 64 lowercase hex characters (a sha256), got {blob_id[:80]!r}")
    return blob_id


def mismatch(claimed: str, actual: str) -> str:
    return (f"content sent as blob {claimed} has sha256 {actual}: it was corrupted on the way, or its "
            "file changed while it was being sent; send it again")


class BlobStore:
    def __init__(self, root: Path, on_seen: Callable[[str], None] | None = None) -> None:
        """``on_seen`` is told of every blob found already stored when asked about or sent
        again: a client is about to refer to it (the volume store's garbage collection
        leaves such blobs alone for a while)."""
        self.root = root
        self._on_seen = on_seen
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = root / "tmp"
        self._tmp.mkdir(exist_ok=True)

    def path(self, blob_id: str) -> Path:
        check_blob_id(blob_id)
        return self.root / blob_id[:2] / blob_id

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).exists()

    def missing(self, blob_ids: list[str]) -> list[str]:
        return [b for b in blob_ids if not self._seen(b)]

    def _seen(self, blob_id: str) -> bool:
        if not self.path(blob_id).exists():
            return False
        if self._on_seen is not None:
            self._on_seen(blob_id)
        return True

    async def put_stream(self, blob_id: str, chunks: AsyncIterator[bytes]) -> None:
        """Store a blob, verifying its hash; a mismatch stores nothing."""
        target = self.path(blob_id)
        if self._seen(blob_id):
            async for _ in chunks:
                pass
            return
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:

                def absorb(parts: list[bytes]) -> None:
                    for part in parts:
                        digest.update(part)
                        f.write(part)

                pending: asyncio.Future[None] | None = None
                batch: list[bytes] = []
                held = 0
                async for chunk in chunks:
                    batch.append(chunk)
                    held += len(chunk)
                    if held >= STREAM_BATCH:
                        if pending is not None:
                            await pending
                        pending = asyncio.ensure_future(asyncio.to_thread(absorb, batch))
                        batch, held = [], 0
                if pending is not None:
                    await pending
                if batch:
                    await asyncio.to_thread(absorb, batch)
            if digest.hexdigest() != blob_id:
                raise InvalidError(mismatch(blob_id, digest.hexdigest()))
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def put_bytes(self, data: bytes | memoryview, blob_id: str | None = None) -> str:
        """Store one blob held in memory (blocking: call it on a worker thread) and return
        its id. With ``blob_id``, content that hashes to anything else is refused and
        nothing is stored."""
        actual = hashlib.sha256(data).hexdigest()
        if blob_id is not None and actual != blob_id:
            raise InvalidError(mismatch(blob_id, actual))
        target = self.path(actual)
        if self._seen(actual):
            return actual
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                view = memoryview(data)
                while view:
                    view = view[f.write(view):]
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return actual

    def size(self, blob_id: str) -> int | None:
        """The blob's size in bytes, or None when the store lacks it."""
        try:
            return self.path(blob_id).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, blob_id: str) -> bytes:
        try:
            return self.path(blob_id).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {blob_id} is not in the blob store") from None

    def materialize(self, manifest: dict[str, str], into: Path) -> Path:
        """Lay out a code mount (relative path -> blob id) as a directory of hard links.

        The directory is named by the manifest's own hash, so the same code is laid out
        once and reused by every container that runs it.
        """
        key = hashlib.sha256(repr(sorted(manifest.items())).encode()).hexdigest()[:32]
        target = into / key
        if target.exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=into, prefix=".staging-"))
        for rel, blob_id in manifest.items():
            rel_path = Path(rel)
            if rel_path.is_absolute() or ".." in rel_path.parts:
                raise InvalidError(f"mount path {rel!r} must be relative and stay inside the mount")
            dest = staging / rel_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = self.path(blob_id)
            if not src.exists():
                raise NotFoundError(f"code file {rel} (blob {blob_id}) was never uploaded")
            os.link(src, dest)
        try:
            os.rename(staging, target)
        except OSError:  # another container laid it out first
            pass
        return target

