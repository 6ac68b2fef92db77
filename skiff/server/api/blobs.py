from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from ...protocol.errors import NotFoundError
from ...protocol.wire import API_PREFIX, BlobsMissing
from ..blobs import check_blob_id
from ..control import ControlPlane
from .deps import BYTES, ERRORS, control, require_token, wire

router = APIRouter(prefix=API_PREFIX + "/blobs", dependencies=[Depends(require_token)], responses=ERRORS)


@router.post("/missing")
async def missing(body: BlobsMissing, cp: ControlPlane = Depends(control)) -> Response:
    for blob_id in body.blob_ids:
        check_blob_id(blob_id)
    found = await asyncio.to_thread(cp.blobs.missing, body.blob_ids)
    return wire(BlobsMissing(blob_ids=found))


@router.put("/{blob_id}")
async def put_blob(blob_id: str, request: Request, cp: ControlPlane = Depends(control)) -> Response:
    check_blob_id(blob_id)
    await cp.blobs.put_stream(blob_id, request.stream())
    return wire(None)


@router.get("/{blob_id}", responses=BYTES)
async def get_blob(blob_id: str, cp: ControlPlane = Depends(control)) -> Response:
    path = cp.blobs.path(blob_id)
    if not path.exists():
        raise NotFoundError(f"blob {blob_id} is not in the blob store")
    return FileResponse(path, media_type="application/octet-stream")
