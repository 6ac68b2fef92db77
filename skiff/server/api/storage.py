"""Routes for Secrets, Dicts, Queues and Volumes. Values travel base64-encoded pickles;
the server stores them as bytes and never unpickles them."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from ...protocol.errors import InvalidError, NotFoundError
from ...protocol.volumes import BATCH_BLOBS, BATCH_BYTES, CHUNK, pack_blobs, unpack_blobs
from ...protocol.wire import (
    API_PREFIX,
    BlobsMissing,
    DictKey,
    DictPut,
    Ensure,
    QueuePut,
    SecretCreate,
    VolumeCommit,
    VolumeCopy,
)
from ..blobs import check_blob_id
from ..control import ControlPlane
from .deps import BYTES, ERRORS, control, require_token, wire

router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], responses=ERRORS)

T = TypeVar("T")


def _b(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidError("expected base64-encoded data") from None


def _s(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _run(cp: ControlPlane, fn: Callable[..., T], *args: Any) -> T:
    return await cp.store.run(fn, *args)


# -- secrets ---------------------------------------------------------------------------------


@router.post("/secrets")
async def create_secret(body: SecretCreate, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.secrets.put, body.name, body.values, body.overwrite)
    return wire(None)


@router.get("/secrets")
async def list_secrets(cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"secrets": await _run(cp, cp.secrets.list)}


@router.delete("/secrets/{name}")
async def delete_secret(name: str, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.secrets.delete, name)
    return wire(None)


# -- dicts -------------------------------------------------------------------------------------


@router.post("/dicts/{name}")
async def ensure_dict(name: str, body: Ensure, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.dicts.ensure, name, body.create_if_missing)
    return wire(None)


@router.get("/dicts")
async def list_dicts(cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"dicts": await _run(cp, cp.dicts.list)}


@router.delete("/dicts/{name}")
async def delete_dict(name: str, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.dicts.delete, name)
    return wire(None)


@router.post("/dicts/{name}/put")
async def dict_put(name: str, body: DictPut, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    if any(len(pair) != 2 for pair in body.items):
        raise InvalidError("items must be [key, value] pairs")
    items = [(_b(k), _b(v)) for k, v in body.items]
    return {"written": await _run(cp, cp.dicts.put, name, items, body.skip_if_exists)}


@router.post("/dicts/{name}/get")
async def dict_get(name: str, body: DictKey, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    value = await _run(cp, cp.dicts.get, name, _b(body.key))
    return {"found": value is not None, "value": None if value is None else _s(value)}


@router.post("/dicts/{name}/pop")
async def dict_pop(name: str, body: DictKey, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    value = await _run(cp, cp.dicts.pop, name, _b(body.key))
    return {"found": value is not None, "value": None if value is None else _s(value)}


@router.get("/dicts/{name}/len")
async def dict_len(name: str, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"len": await _run(cp, cp.dicts.length, name)}


@router.get("/dicts/{name}/items")
async def dict_items(name: str, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"items": [[_s(k), _s(v)] for k, v in await _run(cp, cp.dicts.items, name)]}


@router.post("/dicts/{name}/clear")
async def dict_clear(name: str, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.dicts.clear, name)
    return wire(None)


# -- queues ------------------------------------------------------------------------------------


@router.post("/queues/{name}")
async def ensure_queue(name: str, body: Ensure, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.queues.ensure, name, body.create_if_missing)
    return wire(None)


@router.get("/queues")
async def list_queues(cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"queues": await _run(cp, cp.queues.list)}


@router.delete("/queues/{name}")
async def delete_queue(name: str, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.queues.delete, name)
    return wire(None)


@router.post("/queues/{name}/put")
async def queue_put(name: str, body: QueuePut, cp: ControlPlane = Depends(control)) -> Response:
    await cp.queues.put(name, body.partition, [_b(v) for v in body.values])
    return wire(None)


@router.get("/queues/{name}/get")
async def queue_get(
    name: str,
    n: int = Query(1, ge=1, le=10000),
    timeout: float = Query(0.0, ge=0, le=60),
    partition: str = Query(""),
    cp: ControlPlane = Depends(control),
) -> dict[str, Any]:
    return {"values": [_s(v) for v in await cp.queues.get(name, partition, n, timeout)]}


@router.get("/queues/{name}/len")
async def queue_len(name: str, partition: str | None = None, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"len": await _run(cp, cp.queues.length, name, partition)}


@router.get("/queues/{name}/peek")
async def queue_peek(name: str, after: int = Query(0, ge=0, le=2**62), n: int = Query(100, ge=1, le=1000),
                     partition: str = Query(""), cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"items": [[i, _s(v)] for i, v in await _run(cp, cp.queues.peek, name, partition, after, n)]}


@router.post("/queues/{name}/clear")
async def queue_clear(name: str, partition: str | None = None, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.queues.clear, name, partition)
    return wire(None)


# -- volumes -----------------------------------------------------------------------------------


@router.post("/volumes/{name}")
async def ensure_volume(name: str, body: Ensure, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"version": await _run(cp, cp.volumes.ensure, name, body.create_if_missing)}


@router.get("/volumes")
async def list_volumes(cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"volumes": await _run(cp, cp.volumes.list)}


@router.delete("/volumes/{name}")
async def delete_volume(name: str, cp: ControlPlane = Depends(control)) -> Response:
    await _run(cp, cp.volumes.delete, name)
    return wire(None)


@router.get("/volumes/{name}/manifest")
async def volume_manifest(name: str, version: int | None = Query(None, ge=0, le=2**62),
                          cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    v, manifest = await _run(cp, cp.volumes.manifest, name, version)
    return {"version": v, "manifest": manifest}


@router.get("/volumes/{name}/ls")
async def volume_ls(name: str, path: str = "", recursive: bool = False,
                    cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"entries": await _run(cp, cp.volumes.listdir, name, path, recursive)}


@router.post("/volumes/{name}/commit")
async def volume_commit(name: str, body: VolumeCommit, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"version": await _run(cp, cp.volumes.commit, name, body.changes)}


@router.post("/volumes/{name}/copy")
async def volume_copy(name: str, body: VolumeCopy, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"version": await _run(cp, cp.volumes.copy, name, body.sources, body.dest)}


@router.post("/volume-blobs/missing")
async def volume_blobs_missing(body: BlobsMissing, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    for blob_id in body.blob_ids:
        check_blob_id(blob_id)
    return {"blob_ids": await asyncio.to_thread(cp.volumes.blobs.missing, body.blob_ids)}


@router.put("/volume-blobs/{blob_id}")
async def volume_blob_put(blob_id: str, request: Request, cp: ControlPlane = Depends(control)) -> Response:
    check_blob_id(blob_id)
    await cp.volumes.blobs.put_stream(blob_id, request.stream())
    return wire(None)


@router.get("/volume-blobs/local")
async def volume_blobs_local(request: Request, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    """Where the local-transfer socket listens, for clients on this machine."""
    path = await asyncio.to_thread(cp.volumes.local_transfer, request.app.state.token)
    return {"socket": str(path)}


@router.get("/volume-blobs/{blob_id}", responses=BYTES)
async def volume_blob_get(blob_id: str, cp: ControlPlane = Depends(control)) -> Response:
    path = cp.volumes.blobs.path(blob_id)
    if not await asyncio.to_thread(path.exists):
        raise NotFoundError(f"blob {blob_id} is not in the volume store")
    return _file_response(path)


@router.post("/volume-blobs/upload")
async def volume_blobs_upload(request: Request, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    """Many small blobs in one request (a body made by
    ``skiff._volume_transfer.pack_blobs``, with a header ``{"blobs": [[blob id, size],
    ...]}``); each is verified against its id."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > BATCH_BYTES + (1 << 20):
            raise InvalidError(f"a batch of volume blobs is limited to {BATCH_BYTES} bytes; split it, or PUT "
                               "large blobs to /volume-blobs/<id> one by one")
    header, data = unpack_blobs(bytes(body), "volume blob upload")
    blobs = header.get("blobs")
    if (not isinstance(blobs, list) or len(blobs) > BATCH_BLOBS
            or not all(isinstance(b, list) and len(b) == 2 and isinstance(b[1], int) and b[1] >= 0 for b in blobs)):
        raise InvalidError(f"volume blob upload: the header needs \"blobs\": at most {BATCH_BLOBS} "
                           "[blob id, size] pairs")
    if sum(size for _, size in blobs) != len(data):
        raise InvalidError(f"volume blob upload: the header lists {sum(size for _, size in blobs)} bytes of blobs, "
                           f"but {len(data)} bytes follow it")
    for blob_id, _ in blobs:
        check_blob_id(str(blob_id))

    def store() -> None:
        at = 0
        for blob_id, size in blobs:
            cp.volumes.blobs.put_bytes(data[at:at + size], blob_id)
            at += size

    await asyncio.to_thread(store)
    return {"stored": len(blobs)}


@router.post("/volume-blobs/download", responses=BYTES)
async def volume_blobs_download(body: BlobsMissing, cp: ControlPlane = Depends(control)) -> Response:
    """Many small blobs in one response: a body made by
    ``skiff._volume_transfer.pack_blobs`` with a header ``{"sizes": [...]}``, the blobs in
    the order asked for."""
    if len(body.blob_ids) > BATCH_BLOBS:
        raise InvalidError(f"ask for at most {BATCH_BLOBS} volume blobs at once; fetch large ones one by one")
    for blob_id in body.blob_ids:
        check_blob_id(blob_id)
    blobs = cp.volumes.blobs

    def read() -> bytes:
        parts: list[bytes | memoryview] = []
        for blob_id in body.blob_ids:
            if (size := blobs.size(blob_id)) is None:
                raise NotFoundError(f"blob {blob_id} is not in the volume store")
            if size > BATCH_BYTES:
                raise InvalidError(f"blob {blob_id} has {size} bytes; fetch it alone from /volume-blobs/<id>")
            parts.append(blobs.path(blob_id).read_bytes())
        if sum(len(p) for p in parts) > BATCH_BYTES:
            raise InvalidError(f"the blobs asked for hold more than {BATCH_BYTES} bytes; ask for fewer at once")
        return pack_blobs({"sizes": [len(p) for p in parts]}, parts)

    return Response(await asyncio.to_thread(read), media_type="application/octet-stream")


@router.get("/volumes/{name}/file", responses=BYTES)
async def volume_file(name: str, path: str, cp: ControlPlane = Depends(control)) -> Response:
    blobs = await _run(cp, cp.volumes.file_blobs, name, path)
    if len(blobs) == 1:
        return _file_response(blobs[0])

    async def chunks() -> AsyncIterator[bytes]:
        for blob in blobs:
            with open(blob, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream")


def _file_response(path: Path) -> FileResponse:
    response = FileResponse(path, media_type="application/octet-stream")
    response.chunk_size = 1 << 20  # Starlette's 64 KiB default makes large gets several times slower
    return response
