"""``Volume``: a persistent, versioned file tree that functions mount.

```python
vol = skiff.Volume.from_name("model-cache", create_if_missing=True)

@app.function(volumes={"/cache": vol})
def train():
    save_checkpoint("/cache/ckpt.pt")
    vol.commit()            # publish; other containers see it after vol.reload()
```
A container mounts the version that was current when it started. ``commit()`` publishes
what it changed (the last writer wins per file); changes also commit when the container
stops normally. ``reload()`` brings in what others committed since.

How files move, as blocks over HTTP or, on the server's machine, through a Unix socket
that passes file descriptors, is :mod:`skiff._volume_transfer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._object import NamedObject
from ._sync import dual, run_sync
from ._volume_transfer import download_files, store_files, upload_files
from .exception import InvalidError
from .protocol.volumes import entry_blocks, file_entry
from .protocol.wire import VolumeCommit, VolumeCopy, encode

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Volume", "FileEntry"]


@dataclass(frozen=True)
class FileEntry:
    path: str
    type: str  # "file" | "directory"
    size: int = 0


class _Mounted:
    """What a container knows about a volume it mounted: where, and which version."""

    def __init__(self, path: str, version: int, since: float) -> None:
        self.path = Path(path)
        self.version = version
        self.manifest: dict[str, dict[str, Any]] | None = None
        self.since = since  # files modified before this are the version's own


def _mounted_volumes() -> dict[str, _Mounted]:
    global _MOUNTS
    if _MOUNTS is None:
        raw = json.loads(os.environ.get("SKIFF_VOLUMES", "[]"))
        _MOUNTS = {v["name"]: _Mounted(v["path"], v["version"], v["since"]) for v in raw}
    return _MOUNTS


_MOUNTS: dict[str, _Mounted] | None = None


class Volume(NamedObject):
    _kind = "volume"
    _route = "volumes"

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False) -> Volume:
        return Volume(name, create_if_missing)

    # -- in a container -----------------------------------------------------------------

    async def _base_manifest(self, client: Client, mount: _Mounted) -> dict[str, dict[str, Any]]:
        if mount.manifest is None:
            res = await client.request("GET", f"/volumes/{self.name}/manifest", params={"version": mount.version})
            mount.manifest = res["manifest"]
        return mount.manifest

    @dual
    async def commit(self) -> None:
        """Publish this container's changes to the volume. Outside a container that
        mounts the volume there is nothing to commit."""
        mount = _mounted_volumes().get(self.name)
        if mount is None:
            return
        client = await self._client()
        base = await self._base_manifest(client, mount)
        changes = await asyncio.to_thread(_scan_changes, mount, base)
        if not changes:
            return
        await upload_files(client, [(mount.path / p, e) for p, e in changes.items() if e])
        res = await client.request("POST", f"/volumes/{self.name}/commit", json=encode(VolumeCommit(changes=changes)))
        latest = await client.request("GET", f"/volumes/{self.name}/manifest", params={"version": res["version"]})
        mount.version, mount.manifest, mount.since = res["version"], latest["manifest"], time.time()

    @dual
    async def reload(self) -> None:
        """Bring in the newest committed version: files others changed are replaced,
        files they removed are removed; this container's own new files stay."""
        mount = _mounted_volumes().get(self.name)
        if mount is None:
            return
        client = await self._client()
        base = await self._base_manifest(client, mount)
        latest = await client.request("GET", f"/volumes/{self.name}/manifest")
        changed = [(path, entry) for path, entry in latest["manifest"].items()
                   if path not in base or entry_blocks(base[path]) != entry_blocks(entry)]
        temps = []
        for path, entry in changed:
            target = mount.path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            temps.append((entry, target.with_name(f".{target.name}.skiff-reload")))
        try:
            await download_files(client, temps)
            for (path, entry), (_, tmp) in zip(changed, temps, strict=True):
                os.chmod(tmp, entry.get("mode", 0o644))
                os.replace(tmp, mount.path / path)
        finally:
            for _, tmp in temps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        for path in set(base) - set(latest["manifest"]):
            with contextlib.suppress(FileNotFoundError):
                (mount.path / path).unlink()
        mount.version, mount.manifest, mount.since = latest["version"], latest["manifest"], time.time()

    # -- from anywhere --------------------------------------------------------------------

    @dual
    async def listdir(self, path: str = "/", *, recursive: bool = False) -> list[FileEntry]:
        client = await self._client()
        res = await client.request("GET", f"/volumes/{self.name}/ls", params={"path": path, "recursive": recursive})
        return [FileEntry(e["path"], e["type"], e.get("size", 0)) for e in res["entries"]]

    @dual
    async def read_file(self, path: str) -> AsyncIterator[bytes]:
        """The file's bytes, in chunks."""
        client = await self._client()
        async for chunk in client.stream(f"/volumes/{self.name}/file", params={"path": path}):
            yield chunk

    @dual
    async def remove_file(self, path: str, *, recursive: bool = False) -> None:
        client = await self._client()
        entries = await client.request("GET", f"/volumes/{self.name}/ls", params={"path": path})
        is_dir = not (len(entries["entries"]) == 1 and entries["entries"][0]["path"] == path.strip("/"))
        if is_dir and not recursive:
            raise InvalidError(f"{path} is a directory; pass recursive=True to remove it and its files")
        await client.request("POST", f"/volumes/{self.name}/commit", json=encode(VolumeCommit(changes={path.strip("/"): None})))

    @dual
    async def copy_files(self, src_paths: list[str], dst_path: str) -> None:
        client = await self._client()
        await client.request("POST", f"/volumes/{self.name}/copy", json=encode(VolumeCopy(sources=src_paths, dest=dst_path)))

    def batch_upload(self, force: bool = False) -> _BatchUpload:
        """Upload local files in one commit.

        ```python
        with vol.batch_upload() as batch:
            batch.put_file("weights.bin", "/models/weights.bin")
            batch.put_directory("data/", "/data")
        ```
        """
        return _BatchUpload(self, force)


class _BatchUpload:
    def __init__(self, volume: Volume, force: bool) -> None:
        self.volume = volume
        self.force = force
        self._files: dict[str, Path] = {}

    def put_file(self, local_file: str | Path, remote_path: str) -> None:
        local = Path(local_file)
        if not local.is_file():
            raise InvalidError(f"put_file: {local} is not a file")
        self._add(remote_path.strip("/"), local)

    def put_directory(self, local_path: str | Path, remote_path: str) -> None:
        local = Path(local_path)
        if not local.is_dir():
            raise InvalidError(f"put_directory: {local} is not a directory")
        for f in sorted(local.rglob("*")):
            if f.is_file():
                self._add(f"{remote_path.strip('/')}/{f.relative_to(local).as_posix()}".strip("/"), f)

    def _add(self, remote: str, local: Path) -> None:
        if not remote:
            raise InvalidError("a volume file needs a path, not the volume's root")
        self._files[remote] = local

    def __enter__(self) -> _BatchUpload:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            run_sync(self.commit())

    async def commit(self) -> int:
        client = await self.volume._client()
        if not self.force:
            existing = {e["path"] for e in (await client.request(
                "GET", f"/volumes/{self.volume.name}/ls", params={"path": "", "recursive": True}))["entries"]}
            clash = sorted(set(self._files) & existing)
            if clash:
                raise InvalidError(f"{clash[0]} already exists in volume {self.volume.name!r}; use batch_upload(force=True)")
        remotes = list(self._files)
        entries = await store_files(client, [self._files[r] for r in remotes])
        changes: dict[str, dict[str, Any] | None] = dict(zip(remotes, entries, strict=True))
        res = await client.request("POST", f"/volumes/{self.volume.name}/commit", json=encode(VolumeCommit(changes=changes)))
        version: int = res["version"]
        return version


def _scan_changes(mount: _Mounted, base: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """What differs between the mounted directory and the version it started from."""
    changes: dict[str, dict[str, Any] | None] = {}
    seen: set[str] = set()
    for root, _dirs, files in os.walk(mount.path):
        for name in files:
            full = Path(root) / name
            rel = full.relative_to(mount.path).as_posix()
            if name.endswith(".skiff-reload"):
                continue
            seen.add(rel)
            st = full.stat()
            old = base.get(rel)
            if old is not None and old["size"] == st.st_size and st.st_mtime < mount.since:
                continue  # untouched since the mount or the last commit
            entry = file_entry(full)
            if old is None or entry_blocks(old) != entry["blocks"]:
                changes[rel] = entry
    for rel in set(base) - seen:
        changes[rel] = None
    return changes


def commit_mounted_volumes() -> None:
    """Commit every mounted volume: the container runtime calls this on a normal stop."""
    for name in _mounted_volumes():
        Volume(name).commit()
