"""Running an app: register it with the server, keep it alive, stream its logs, stop it.

Used by ``with app.run():`` and by ``skiff run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import _mount
from ._client import Client, get_client
from ._progress import BuildProgress
from .cls import Cls
from .exception import ConnectionError, ImageBuildError, InvalidError, NotFoundError
from .image import Image
from .protocol import payload as wire_payload
from .protocol import serialization as ser
from .protocol.wire import (
    AppCreate,
    BlobsMissing,
    FunctionCreate,
    FunctionCreated,
    FunctionSpec,
    ImageCreate,
    LocalMountSpec,
    Payload,
    SecretCreate,
    SecretRef,
    VolumeRef,
    decode,
    encode,
)

if TYPE_CHECKING:
    from .app import App
    from .functions import Function


def in_container() -> bool:
    return os.environ.get("SKIFF_IS_CONTAINER") == "1"


async def _upload_mount(client: Client, mount: _mount.CodeMount) -> dict[str, str]:
    manifest = await asyncio.to_thread(mount.manifest)
    blob_ids = sorted({sha for sha, _ in manifest.values()})
    missing = set((await client.request("POST", "/blobs/missing", json=encode(BlobsMissing(blob_ids=blob_ids))))["blob_ids"])
    for sha, path in manifest.values():
        if sha in missing:
            await client.request("PUT", f"/blobs/{sha}", content=path.read_bytes())
            missing.discard(sha)
    return {rel: sha for rel, (sha, _) in manifest.items()}


async def _upload_files(client: Client, files: list[tuple[str, str]]) -> None:
    """Upload (sha256, local path) pairs the server does not have yet."""
    wanted = sorted({sha for sha, _ in files})
    if not wanted:
        return
    missing = set((await client.request("POST", "/blobs/missing", json=encode(BlobsMissing(blob_ids=wanted))))["blob_ids"])
    for sha, path in files:
        if sha in missing:
            data = await asyncio.to_thread(Path(path).read_bytes)
            await client.request("PUT", f"/blobs/{sha}", content=data)
            missing.discard(sha)


async def build_image(client: Client, image: Image, *, show_progress: bool = True) -> str:
    """Make sure the server has ``image`` built, showing the build live; returns its id."""
    await _upload_files(client, list(image._local_files))
    steps = image.to_wire()
    status = await client.request("POST", "/images", json=encode(ImageCreate(steps=steps)))
    image_id: str = status["image_id"]
    if status["status"] == "ready":
        return image_id
    after = 0
    progress = BuildProgress(image_id, len(steps)) if show_progress else None
    with progress or contextlib.nullcontext():
        while True:
            res = await client.request("GET", f"/images/{image_id}/events", params={"after": after, "timeout": 25})
            for ev in res["events"]:
                after = ev["seq"]
                if progress is not None:
                    progress.event(ev)
            if res["status"] == "failed":
                raise ImageBuildError(res["error"])
            if res["status"] == "ready":
                return image_id


async def function_spec(client: Client, fn: Function | Cls, app_id: str, show_progress: bool = True) -> FunctionSpec:
    opts = fn.options
    spec = FunctionSpec(
        name=fn.tag,
        timeout=opts.timeout,
        retries=opts.retries.to_wire() if opts.retries else None,
        min_containers=opts.min_containers,
        max_containers=opts.max_containers,
        buffer_containers=opts.buffer_containers,
        scaledown_window=opts.scaledown_window,
        env=opts.env,
        max_inputs=opts.max_inputs,
        is_generator=getattr(fn, "is_generator", False),
        is_class=isinstance(fn, Cls),
        memory=opts.memory,
        cpu=opts.cpu,
        max_concurrent_inputs=opts.max_concurrent_inputs,
        target_concurrent_inputs=opts.target_concurrent_inputs,
        max_batch_size=opts.max_batch_size,
        batch_wait_ms=opts.batch_wait_ms,
        gpu=opts.gpu,
        web=opts.web,
        schedule=opts.schedule.to_wire() if opts.schedule is not None else None,
    )
    for i, secret in enumerate(opts.secrets):
        name = secret.name
        if name is None:  # an inline secret: stored (encrypted) by the server, referred to by name
            name = f"__inline-{app_id}-{re.sub(r'[^A-Za-z0-9._-]', '-', fn.tag)}-{i}"[:200]
            values = secret._values or {}  # an inline secret always has values; the server refuses none
            await client.request("POST", "/secrets", json=encode(SecretCreate(name=name, values=values, overwrite=True)))
        spec.secrets.append(SecretRef(name=name, required_keys=secret.required_keys))
    for mount_path, vol in opts.volumes.items():
        await vol._ensure()
        spec.volumes.append(VolumeRef(name=vol.name, mount_path=mount_path))
    if opts.image is not None:
        await build_image(client, opts.image, show_progress=show_progress)
        spec.image = opts.image.to_wire()
        spec.mounts = [
            LocalMountSpec(m.remote_path, {rel: sha for rel, _, sha in m.files})
            for m in opts.image.mounts
        ]
    raw = fn.get_user_cls() if isinstance(fn, Cls) else fn.get_raw_f()
    where = _mount.module_of(raw)
    if opts.serialized or where is None or "<locals>" in raw.__qualname__:
        try:
            data = ser.serialize(raw)
        except Exception as exc:
            raise InvalidError(f"function {fn.tag} cannot be serialized to send to a container: {exc}") from exc
        spec.pickled = Payload(data=ser.b64(data))
    else:
        module_name, path = where
        spec.module_name = module_name
        spec.qualname = raw.__qualname__
        spec.mount = await _upload_mount(client, _mount.code_mount(module_name, path))
    return spec


_server_runtime: str | None = None


async def _check_server(client: Client) -> str:
    """The server's runtime; says once per process if it fell back to something weaker."""
    global _server_runtime
    if _server_runtime is None:
        try:
            info = await client.request("GET", "/health")
        except Exception:
            return "unknown"
        _server_runtime = info.get("runtime", "unknown")
        for note in info.get("notes", []):
            if note.startswith("warning:"):
                print(f"skiff: {note}", file=sys.stderr)
    return _server_runtime


class LogPrinter:
    """Prints container output as it arrives, each line tagged with its function."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.color = self.out.isatty() and "NO_COLOR" not in os.environ

    def print(self, entry: dict[str, Any]) -> None:
        tag = f"[{entry['function']}]"
        if self.color:
            tag = f"\x1b[2m{tag}\x1b[0m"
        stream = sys.stderr if entry["stream"] == "stderr" and self.out is sys.stdout else self.out
        stream.write(f"{tag} {entry['text']}\n")
        stream.flush()


class RunningApp:
    def __init__(self, app: App, *, show_logs: bool = True, show_progress: bool | None = None) -> None:
        self.app = app
        self.show_logs = show_logs
        no_progress = os.environ.get("SKIFF_NO_PROGRESS", "") not in ("", "0")
        self.show_progress = (show_logs if show_progress is None else show_progress) and not no_progress
        self.app_id: str | None = None
        self.client: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._log_after = 0
        self._printer = LogPrinter()

    async def start(self) -> None:
        self.client = client = await get_client()
        runtime = await _check_server(client)
        self.app._running = self
        targets: list[Function | Cls] = [*self.app.registered_functions.values(), *self.app.registered_classes.values()]
        if runtime == "oci" and any(t.options.image is None for t in targets):
            # Functions without image= run in the default image: show its first build too.
            await build_image(client, Image.debian_slim(), show_progress=self.show_logs)
        info = await client.request("POST", "/apps", json=encode(AppCreate(name=self.app.name or "ephemeral-app")))
        self.app_id = info["app_id"]
        self._heartbeat_interval = info["heartbeat_interval"]
        # Heartbeats start first: building an image can take minutes.
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="skiff-heartbeat"))
        try:
            for fn in self.app.registered_functions.values():
                spec = await function_spec(client, fn, self.app_id, show_progress=self.show_logs)
                created = await client.request("POST", "/functions", json=encode(FunctionCreate(app_id=self.app_id, spec=spec)))
                fn.object_id = decode(FunctionCreated, created).function_id
        except BaseException:
            await self.stop()
            raise
        if self.show_logs:
            self._tasks.append(asyncio.create_task(self._stream_logs(), name="skiff-logs"))

    async def info(self) -> dict[str, Any]:
        """The app's AppInfo, as JSON."""
        assert self.client is not None
        infos: list[dict[str, Any]] = await self.client.request("GET", f"/apps/{self.app_id}")
        return infos[0]

    async def register_class_variant(self, cls: Cls, params: dict[str, Any]) -> str:
        """Create the server function for one parameterization of a class."""
        assert self.client is not None and self.app_id is not None
        spec = await function_spec(self.client, cls, self.app_id, show_progress=self.show_logs)
        spec.class_params = wire_payload.inline(params)
        if params:
            spec.name = f"{cls.tag}({', '.join(f'{k}={v!r}' for k, v in params.items())})"[:200]
        created = await self.client.request("POST", "/functions", json=encode(FunctionCreate(app_id=self.app_id, spec=spec)))
        return decode(FunctionCreated, created).function_id

    async def _heartbeat(self) -> None:
        assert self.client is not None
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                await self.client.request("POST", f"/apps/{self.app_id}/heartbeat", idempotent=True)
            except NotFoundError:
                print(f"skiff: app {self.app_id} was stopped on the server", file=sys.stderr)
                return
            except ConnectionError as exc:
                print(f"skiff: heartbeat failed: {exc}", file=sys.stderr)

    async def _stream_logs(self, final: bool = False) -> None:
        assert self.client is not None
        while True:
            try:
                batch = await self.client.request(
                    "GET", f"/apps/{self.app_id}/logs", params={"after": self._log_after, "timeout": 0 if final else 25}
                )
            except ConnectionError:
                if final:
                    return
                await asyncio.sleep(1.0)
                continue
            for entry in batch["entries"]:
                self._log_after = entry["seq"]
                self._printer.print(entry)
            if (final or batch["app_state"] == "stopped") and not batch["entries"]:
                return

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.client is None or self.app_id is None:
            return
        try:
            await self.client.request("POST", f"/apps/{self.app_id}/stop")
            if self.show_logs:
                await self._stream_logs(final=True)  # whatever the containers printed last
        except (ConnectionError, NotFoundError):
            pass
        finally:
            self.app._running = None
            for fn in self.app.registered_functions.values():
                fn.object_id = None
            for cls in self.app.registered_classes.values():
                cls._forget_variants()
