"""Volumes: versioned trees of content-addressed files.

A version is a manifest, ``path -> {"sha256", "size", "mode"}``; file contents live in a
blob store of their own (``$SKIFF_HOME/volume-blobs``), so an unchanged file is stored
once however many versions and volumes hold it. A commit applies a container's changes
on top of the *current* version, so when two writers commit the same file the last one
wins, and different files from both survive.

A file's content is a list of blocks (``skiff._volume_transfer.BLOCK`` bytes each, the
last one shorter), each a blob named by its sha256, so blocks hash and travel in parallel
and a block the store has is never sent again. Entries committed before blocks existed
name one blob for the whole file (``sha256``) and are read as a file of one block.

Containers see a version through overlayfs: the version's tree of hard links is the
read-only lower layer, and each container writes into an upper directory of its own, so a
write never touches a blob. A one-block file links to its blob; a file of several blocks
is assembled once into ``volume-trees/.files`` and linked from every tree that holds it.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import os
import posixpath
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..protocol.errors import InvalidError, NotFoundError
from ..protocol.names import check_name
from ..protocol.volumes import (
    BLOCK,
    MAX_FDS,
    block_spans,
    entry_blocks,
    read_block,
    recv_message,
    send_message,
)
from .blobs import BlobStore, check_blob_id
from .store import Store
from .store.models import VolumeRow, VolumeVersionRow

log = logging.getLogger(__name__)

KEEP_VERSIONS = 5  # older versions (and blobs only they hold) are dropped
CACHED_MANIFESTS = 64  # parsed manifests kept in memory (a version never changes)
# Seconds an unreferenced blob is kept after it was last stored or asked about (tests
# shorten it with SKIFF_VOLUME_GC_GRACE).
GC_GRACE = float(os.environ.get("SKIFF_VOLUME_GC_GRACE", "3600"))
MAX_CONNECTIONS = 64  # local-channel connections served at once; more fall back to HTTP
FIRST_MESSAGE_TIMEOUT = 10.0  # seconds a local-channel connection has to show the token

Entry = dict[str, Any]  # a manifest entry: {"blocks", "size", "mode"} (or, from before blocks, {"sha256", ...})
Manifest = dict[str, Entry]  # path -> entry


def clean_path(path: str) -> str:
    """A volume path without leading '/' or '..', or an error saying why not."""
    norm = posixpath.normpath("/" + (path or "")).lstrip("/")
    if norm in ("", "."):
        return ""
    if any(part == ".." for part in norm.split("/")):
        raise InvalidError(f"volume path {path!r} leaves the volume")
    return norm


class VolumeStore:
    def __init__(self, store: Store, home: Path) -> None:
        self.store = store
        # Blobs a client was just told it need not send, or sent again: the commit that
        # will refer to them may still be on its way (see collect_garbage).
        self._seen: dict[str, float] = {}
        self.blobs = BlobStore(home / "volume-blobs", on_seen=self._mark_seen)
        self.trees = home / "volume-trees"
        self.trees.mkdir(parents=True, exist_ok=True)
        self.files = self.trees / ".files"  # assembled multi-block files, by file_key
        self.files.mkdir(exist_ok=True)
        self.socket_path = home / "run" / "volume-transfer.sock"
        self._manifests: OrderedDict[tuple[str, float, int], Manifest] = OrderedDict()
        self._manifests_lock = threading.Lock()
        self._local: LocalTransfer | None = None
        # Garbage collection's deletions and commits take turns: a commit's blocks, checked
        # as stored, must not be deleted before its manifest is written.
        self._gc_lock = threading.Lock()

    def _mark_seen(self, blob_id: str) -> None:
        self._seen[blob_id] = time.time()

    # -- volumes ------------------------------------------------------------------------

    def ensure(self, name: str, create: bool) -> int:
        """The volume's current version, creating it (empty, version 0) if asked."""
        check_name("volume", name)
        with self.store.session() as s, s.begin():
            row = s.get(VolumeRow, name)
            if row is None:
                if not create:
                    raise NotFoundError(self._missing(s, name))
                s.add(VolumeRow(name=name, version=0, created_at=time.time()))
                s.add(VolumeVersionRow(volume_name=name, version=0, manifest={}, created_at=time.time()))
                return 0
            return row.version

    def _missing(self, s: Session, name: str) -> str:
        names = list(s.scalars(select(VolumeRow.name).order_by(VolumeRow.name)))
        return f"no volume named {name!r}; volumes that exist: {', '.join(names) or 'none'}"

    def list(self) -> list[dict[str, Any]]:
        with self.store.session() as s:
            out = []
            for row in s.scalars(select(VolumeRow).order_by(VolumeRow.name)):
                current = s.get(VolumeVersionRow, (row.name, row.version))
                if current is None:
                    continue  # deleted by another request since the rows were read
                manifest = current.manifest
                out.append({"name": row.name, "version": row.version, "created_at": row.created_at,
                            "files": len(manifest), "bytes": sum(e["size"] for e in manifest.values())})
            return out

    def manifest(self, name: str, version: int | None = None) -> tuple[int, Manifest]:
        """(version, manifest) of the current or a given version. The result is shared
        with a cache (a version never changes): read it, never modify it."""
        with self.store.session() as s:
            row = s.get(VolumeRow, name)
            if row is None:
                raise NotFoundError(self._missing(s, name))
            v = row.version if version is None else version
            key = (name, row.created_at, v)  # a volume deleted and made again starts over at 0
            with self._manifests_lock:
                cached = self._manifests.get(key)
                if cached is not None:
                    self._manifests.move_to_end(key)
                    return v, cached
            ver = s.get(VolumeVersionRow, (name, v))
            if ver is None:
                raise NotFoundError(f"volume {name!r} has no version {v} (its current version is {row.version})")
            with self._manifests_lock:
                self._manifests[key] = ver.manifest
                while len(self._manifests) > CACHED_MANIFESTS:
                    self._manifests.popitem(last=False)
            return v, ver.manifest

    def _checked_entry(self, path: str, entry: Entry) -> Entry:
        """A committed entry in stored form, ``{"blocks", "size", "mode"}``, once its blocks
        are known to be stored and to add up to its size; or an error saying what is wrong."""
        if not isinstance(entry, dict) or not ("blocks" in entry or "sha256" in entry) or "size" not in entry:
            raise InvalidError(f"file {path}: an entry needs \"blocks\" (a list of blob ids), \"size\" and "
                               "optionally \"mode\"")
        blocks = entry.get("blocks") or [entry.get("sha256")]
        if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
            raise InvalidError(f"file {path}: \"blocks\" must be a list of blob ids")
        size, mode = entry["size"], entry.get("mode", 0o644)
        if not isinstance(size, int) or size < 0 or not isinstance(mode, int):
            raise InvalidError(f"file {path}: \"size\" and \"mode\" must be non-negative integers")
        for blob_id in blocks:
            check_blob_id(blob_id)
        count = max(1, -(-size // BLOCK))
        # One blob of any size is how content from before blocks is carried forward.
        if len(blocks) not in (1, count):
            raise InvalidError(f"file {path}: a {size}-byte file is {count} block(s) of {BLOCK} bytes (the last "
                               f"one shorter), not {len(blocks)}")
        sizes = [self.blobs.size(b) for b in blocks]
        for blob_id, got in zip(blocks, sizes, strict=True):
            if got is None:
                raise InvalidError(f"file {path} (blob {blob_id[:12]}) was not uploaded before the commit")
        expected = [length for _, length in block_spans(size, len(blocks))]
        if sizes != expected:
            raise InvalidError(f"file {path}: its blocks hold {sizes} bytes, but a {size}-byte file is "
                               f"{len(blocks)} block(s) of {BLOCK} bytes, the last one shorter")
        return {"blocks": blocks, "size": size, "mode": mode & 0o7777}

    def commit(self, name: str, changes: dict[str, Entry | None]) -> int:
        """Apply ``changes`` (path -> entry, or None to delete) on top of the current
        version; returns the new version."""
        with self._gc_lock:
            return self._commit(name, changes)

    def _commit(self, name: str, changes: dict[str, Entry | None]) -> int:
        checked: dict[str, Entry | None] = {}
        for path, entry in changes.items():
            if clean_path(path) != path or not path:
                raise InvalidError(f"volume path {path!r} must be relative and normalized")
            checked[path] = None if entry is None else self._checked_entry(path, entry)
        with self.store.session() as s, s.begin():
            row = s.get(VolumeRow, name, with_for_update=True)
            if row is None:
                raise NotFoundError(self._missing(s, name))
            manifest = dict(_current(s, row).manifest)
            for path, entry in checked.items():
                if entry is None:
                    manifest.pop(path, None)
                    prefix = path + "/"
                    for other in [p for p in manifest if p.startswith(prefix)]:
                        del manifest[other]
                else:
                    manifest[path] = entry
            row.version += 1
            s.add(VolumeVersionRow(volume_name=name, version=row.version, manifest=manifest, created_at=time.time()))
            old = list(s.scalars(select(VolumeVersionRow).where(
                VolumeVersionRow.volume_name == name, VolumeVersionRow.version <= row.version - KEEP_VERSIONS)))
            for ver in old:
                s.delete(ver)
            return row.version

    def delete(self, name: str) -> None:
        with self.store.session() as s, s.begin():
            row = s.get(VolumeRow, name)
            if row is None:
                raise NotFoundError(self._missing(s, name))
            for ver in s.scalars(select(VolumeVersionRow).where(VolumeVersionRow.volume_name == name)):
                s.delete(ver)
            s.delete(row)
        shutil.rmtree(self.trees / name, ignore_errors=True)
        self.collect_garbage()

    def collect_garbage(self) -> int:
        """Delete blobs (and assembled files) no remaining version refers to; returns how
        many blobs. Blobs stored, or found already stored by a client, within ``GC_GRACE``
        are kept: a commit still on its way may refer to them. The store is walked first;
        only the deletions, after a fresh look at what is referenced, hold commits up."""
        recent = time.time() - GC_GRACE
        for blob_id, at in list(self._seen.items()):
            if at < recent:
                self._seen.pop(blob_id, None)
        live, live_files = self._referenced()
        candidates = [blob for sub in self.blobs.root.iterdir() if sub.is_dir() and sub.name != "tmp"
                      for blob in sub.iterdir()
                      if blob.name not in live and blob.name not in self._seen and _older_than(blob, recent)]
        with self._gc_lock:
            live, live_files = self._referenced()
            freed = 0
            for blob in candidates:
                if blob.name not in live and blob.name not in self._seen:
                    blob.unlink(missing_ok=True)
                    freed += 1
            for assembled in self.files.iterdir():
                # ".assembling-*" are files being laid out right now.
                if not assembled.name.startswith(".") and assembled.name not in live_files:
                    assembled.unlink(missing_ok=True)
        return freed

    def _referenced(self) -> tuple[set[str], set[str]]:
        """The blob ids, and the assembled files' keys, that some stored version uses."""
        with self.store.session() as s:
            entries = [e for m in s.scalars(select(VolumeVersionRow.manifest)) for e in m.values()]
        return {b for e in entries for b in entry_blocks(e)}, {file_key(entry_blocks(e)) for e in entries}

    # -- reading ----------------------------------------------------------------------------

    def listdir(self, name: str, path: str, recursive: bool) -> builtins.list[dict[str, Any]]:
        _, manifest = self.manifest(name)
        base = clean_path(path)
        prefix = base + "/" if base else ""
        if base in manifest:
            return [{"path": base, "type": "file", **manifest[base]}]
        out: dict[str, dict[str, Any]] = {}
        for p, entry in sorted(manifest.items()):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if recursive or "/" not in rest:
                out[p] = {"path": p, "type": "file", **entry}
            else:
                d = prefix + rest.split("/", 1)[0]
                out.setdefault(d, {"path": d, "type": "directory", "size": 0})
        if base and not out:
            raise NotFoundError(f"volume {name!r} has no file or directory {base!r}")
        return list(out.values())

    def file_blobs(self, name: str, path: str) -> builtins.list[Path]:
        """The blob files that hold a volume file's content, in order."""
        _, manifest = self.manifest(name)
        entry = manifest.get(clean_path(path))
        if entry is None:
            raise NotFoundError(f"volume {name!r} has no file {clean_path(path)!r}")
        return [self.blobs.path(b) for b in entry_blocks(entry)]

    def copy(self, name: str, sources: builtins.list[str], dest: str) -> int:
        """Copy files (or directories) within the volume; a blob is shared, not copied."""
        _, manifest = self.manifest(name)
        dst = clean_path(dest)
        changes: dict[str, Entry | None] = {}
        for src in sources:
            entries = self.listdir(name, src, recursive=True)
            src_base = clean_path(src)
            for e in entries:
                if e["type"] != "file":
                    continue
                if e["path"] == src_base:  # a file: into dest (a directory if it ends with / or has files)
                    into_dir = dest.endswith("/") or any(p.startswith(dst + "/") for p in manifest) or len(sources) > 1
                    target = posixpath.join(dst, posixpath.basename(src_base)) if into_dir else dst
                else:
                    target = posixpath.join(dst, posixpath.basename(src_base), e["path"][len(src_base) + 1:])
                changes[target] = {"blocks": entry_blocks(e), "size": e["size"], "mode": e["mode"]}
        return self.commit(name, changes)

    # -- containers -------------------------------------------------------------------------

    def tree(self, name: str, version: int) -> Path:
        """The version as a read-only directory of hard links to blobs, laid out once."""
        target = self.trees / name / str(version)
        if target.exists():
            return target
        _, manifest = self.manifest(name, version)
        staging = target.with_name(f".staging-{version}-{os.getpid()}-{time.monotonic_ns()}")
        staging.mkdir(parents=True)
        for path, entry in manifest.items():
            dest = staging / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(self._whole_file(entry), dest)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _whole_file(self, entry: Entry) -> Path:
        """A file holding the entry's whole content, to hard-link into a tree: its blob
        when it has one block, else the blocks assembled once (in the kernel, with
        ``copy_file_range``) and kept for every version that holds the same content."""
        blocks = entry_blocks(entry)
        if len(blocks) == 1:
            return self.blobs.path(blocks[0])
        target = self.files / file_key(blocks)
        if target.exists():
            return target
        fd, tmp = tempfile.mkstemp(dir=self.files, prefix=".assembling-")
        try:
            for blob_id, (offset, length) in zip(blocks, block_spans(entry["size"], len(blocks)), strict=True):
                with open(self.blobs.path(blob_id), "rb") as src:
                    copied = 0
                    while copied < length:
                        n = os.copy_file_range(src.fileno(), fd, length - copied, copied, offset + copied)
                        if n == 0:
                            raise RuntimeError(f"volume blob {blob_id} is shorter than its manifest says")
                        copied += n
            os.fchmod(fd, 0o444)
            os.close(fd)
            fd = -1
            os.replace(tmp, target)
        finally:
            if fd >= 0:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    # -- the local channel ----------------------------------------------------------------------

    def local_transfer(self, token: str) -> Path:
        """The local-transfer socket's path, starting its listener on first use."""
        with self._manifests_lock:
            if self._local is None:
                self._local = LocalTransfer(self.blobs, self.socket_path, token)
        return self.socket_path


def _current(s: Session, row: VolumeRow) -> VolumeVersionRow:
    """The version row of the volume's current version, which a commit never deletes."""
    ver = s.get(VolumeVersionRow, (row.name, row.version))
    assert ver is not None, f"volume {row.name!r} lost its current version {row.version}"
    return ver


def file_key(blocks: list[str]) -> str:
    """The name of a multi-block file assembled from ``blocks``."""
    return hashlib.sha256(" ".join(blocks).encode()).hexdigest()


class LocalTransfer:
    """The server's half of same-machine volume transfers
    (``skiff._volume_transfer.LocalChannel``).

    A Unix SOCK_SEQPACKET socket next to the API socket, served by threads of its own.
    Every message carries the API token. ``store``: the client passes a read-only
    descriptor of a regular file; each block is read into this process's memory, hashed
    there and stored, so what is stored always matches its id, whatever the file does
    meanwhile. ``open``: the server passes read-only descriptors of blobs the client
    names. Neither side gets access it could not have had through HTTP with the token.
    """

    def __init__(self, blobs: BlobStore, path: Path, token: str) -> None:
        self.blobs = blobs
        self.token = token.encode()
        self.pool = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)),
                                       thread_name_prefix="skiff-volume-blocks")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)  # like the API socket: the token guards every message
        self.sock.listen(64)
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        threading.Thread(target=self._accept, name="skiff-volume-local", daemon=True).start()

    def _accept(self) -> None:
        pause = 0.05
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError as exc:  # out of descriptors, say: keep listening once it passes
                log.warning("local volume channel: accept failed (%s); retrying in %.1f s", exc, pause)
                time.sleep(pause)
                pause = min(2.0, pause * 2)
                continue
            pause = 0.05
            if not self._connections.acquire(blocking=False):
                conn.close()  # the client falls back to HTTP
                continue
            try:
                threading.Thread(target=self._serve, args=(conn,), name="skiff-volume-local-conn", daemon=True).start()
            except RuntimeError as exc:  # no thread to be had: this client uses HTTP
                log.warning("local volume channel: cannot serve a connection (%s)", exc)
                self._connections.release()
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(FIRST_MESSAGE_TIMEOUT)  # until it has shown the token
        try:
            with conn:
                self._messages(conn)
        finally:
            self._connections.release()

    def _messages(self, conn: socket.socket) -> None:
        while True:
            try:
                message, fds = recv_message(conn, max_fds=1)
            except (OSError, ValueError):
                return
            try:
                self._handle(conn, message, fds)
                conn.settimeout(600)  # the token checked out: transfers may take a while
            except (InvalidError, NotFoundError, OSError) as exc:
                with _quiet():
                    send_message(conn, {"error": str(exc)})
            except Exception as exc:  # a bug here must not take the listener down
                log.exception("local volume transfer failed")
                with _quiet():
                    send_message(conn, {"error": f"the server failed: {exc!r}"})
            finally:
                for fd in fds:
                    os.close(fd)

    def _handle(self, conn: socket.socket, message: dict[str, Any], fds: list[int]) -> None:
        if not hmac.compare_digest(str(message.get("token", "")).encode(), self.token):
            raise InvalidError("missing or wrong API token on the local volume channel")
        op = message.get("op")
        if op == "hello":
            send_message(conn, {"ok": True})
        elif op == "store":
            if len(fds) != 1:
                raise InvalidError("a store message carries exactly one file descriptor")
            self._store(conn, fds[0])
        elif op == "open":
            blob_ids = message.get("blob_ids")
            if not isinstance(blob_ids, list) or len(blob_ids) > MAX_FDS:
                raise InvalidError(f"an open message names at most {MAX_FDS} blob ids, as a list")
            self._open(conn, [check_blob_id(str(b)) for b in blob_ids])
        else:
            raise InvalidError(f"unknown local volume operation {op!r}; expected hello, store or open")

    def _store(self, conn: socket.socket, fd: int) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidError("only a regular file can be stored in a volume (not a pipe, device or directory)")
        spans = block_spans(st.st_size, max(1, -(-st.st_size // BLOCK)))

        def one(span: tuple[int, int]) -> str:
            return self.blobs.put_bytes(read_block(fd, *span))

        blocks = []
        for blob_id, (_, length) in zip(self.pool.map(one, spans), spans, strict=True):
            blocks.append(blob_id)
            send_message(conn, {"bytes": length})
        send_message(conn, {"done": True, "blocks": blocks, "size": st.st_size})

    def _open(self, conn: socket.socket, blob_ids: list[str]) -> None:
        fds = []
        try:
            for blob_id in blob_ids:
                try:
                    fds.append(os.open(self.blobs.path(blob_id), os.O_RDONLY | os.O_CLOEXEC))
                except FileNotFoundError:
                    raise NotFoundError(f"blob {blob_id} is not in the volume store") from None
            send_message(conn, {"sizes": [os.fstat(fd).st_size for fd in fds]}, fds)
        finally:
            for fd in fds:
                os.close(fd)


class _quiet:
    """Ignore a failure to answer a client that has gone."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


def _older_than(path: Path, when: float) -> bool:
    try:
        return path.stat().st_mtime < when
    except FileNotFoundError:
        return False
