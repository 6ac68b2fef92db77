"""Volumes: versioned trees of content-addressed files.

A version is a manifest, ``path -> {"sha256", "size", "mode"}``; file contents live in a
blob store of their own (``$SKIFF_HOME/volume-blobs``), so an unchanged file is stored
once however many versions and volumes hold it. A commit applies a container's changes
on top of the *current* version, so when two writers commit the same file the last one
wins, and different files from both survive.

Containers see a version through overlayfs: the version's tree of hard links to blobs is
the read-only lower layer, and each container writes into an upper directory of its own,
so a write never touches a blob.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import time
from pathlib import Path

from sqlalchemy import select

from .._object import check_name
from ..exception import InvalidError, NotFoundError
from .blobs import BlobStore
from .store import Store
from .store.models import VolumeRow, VolumeVersionRow

KEEP_VERSIONS = 5  # older versions (and blobs only they hold) are dropped


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
        self.blobs = BlobStore(home / "volume-blobs")
        self.trees = home / "volume-trees"
        self.trees.mkdir(parents=True, exist_ok=True)

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

    def _missing(self, s, name: str) -> str:
        names = list(s.scalars(select(VolumeRow.name).order_by(VolumeRow.name)))
        return f"no volume named {name!r}; volumes that exist: {', '.join(names) or 'none'}"

    def list(self) -> list[dict]:
        with self.store.session() as s:
            out = []
            for row in s.scalars(select(VolumeRow).order_by(VolumeRow.name)):
                manifest = s.get(VolumeVersionRow, (row.name, row.version)).manifest
                out.append({"name": row.name, "version": row.version, "created_at": row.created_at,
                            "files": len(manifest), "bytes": sum(e["size"] for e in manifest.values())})
            return out

    def manifest(self, name: str, version: int | None = None) -> tuple[int, dict]:
        with self.store.session() as s:
            row = s.get(VolumeRow, name)
            if row is None:
                raise NotFoundError(self._missing(s, name))
            v = row.version if version is None else version
            ver = s.get(VolumeVersionRow, (name, v))
            if ver is None:
                raise NotFoundError(f"volume {name!r} has no version {v} (its current version is {row.version})")
            return v, ver.manifest

    def commit(self, name: str, changes: dict[str, dict | None]) -> int:
        """Apply ``changes`` (path -> entry, or None to delete) on top of the current
        version; returns the new version."""
        for path, entry in changes.items():
            if clean_path(path) != path or not path:
                raise InvalidError(f"volume path {path!r} must be relative and normalized")
            if entry is not None and not self.blobs.exists(entry["sha256"]):
                raise InvalidError(f"file {path} (blob {entry['sha256'][:12]}) was not uploaded before the commit")
        with self.store.session() as s, s.begin():
            row = s.get(VolumeRow, name, with_for_update=True)
            if row is None:
                raise NotFoundError(self._missing(s, name))
            manifest = dict(s.get(VolumeVersionRow, (name, row.version)).manifest)
            for path, entry in changes.items():
                if entry is None:
                    manifest.pop(path, None)
                    prefix = path + "/"
                    for other in [p for p in manifest if p.startswith(prefix)]:
                        del manifest[other]
                else:
                    manifest[path] = {"sha256": entry["sha256"], "size": int(entry["size"]),
                                      "mode": int(entry.get("mode", 0o644))}
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
        """Delete blobs no remaining version refers to; returns how many."""
        with self.store.session() as s:
            live = {e["sha256"] for m in s.scalars(select(VolumeVersionRow.manifest)) for e in m.values()}
        freed = 0
        for sub in self.blobs.root.iterdir():
            if not sub.is_dir() or sub.name == "tmp":
                continue
            for blob in sub.iterdir():
                if blob.name not in live:
                    blob.unlink(missing_ok=True)
                    freed += 1
        return freed

    # -- reading ----------------------------------------------------------------------------

    def listdir(self, name: str, path: str, recursive: bool) -> list[dict]:
        _, manifest = self.manifest(name)
        base = clean_path(path)
        prefix = base + "/" if base else ""
        if base in manifest:
            return [{"path": base, "type": "file", **manifest[base]}]
        out: dict[str, dict] = {}
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

    def file_blob(self, name: str, path: str) -> Path:
        _, manifest = self.manifest(name)
        entry = manifest.get(clean_path(path))
        if entry is None:
            raise NotFoundError(f"volume {name!r} has no file {clean_path(path)!r}")
        return self.blobs.path(entry["sha256"])

    def copy(self, name: str, sources: list[str], dest: str) -> int:
        """Copy files (or directories) within the volume; a blob is shared, not copied."""
        _, manifest = self.manifest(name)
        dst = clean_path(dest)
        changes: dict[str, dict | None] = {}
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
                changes[target] = {"sha256": e["sha256"], "size": e["size"], "mode": e["mode"]}
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
            os.link(self.blobs.path(entry["sha256"]), dest)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return target
