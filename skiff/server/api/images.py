from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...protocol.wire import API_PREFIX, ImageBuildStatus, ImageCreate
from ..control import ControlPlane
from .deps import ERRORS, control, require_token, wire

router = APIRouter(prefix=API_PREFIX + "/images", dependencies=[Depends(require_token)], responses=ERRORS)


@router.post("")
async def create_image(body: ImageCreate, cp: ControlPlane = Depends(control)) -> Response:
    build = cp.images.start(body.steps)
    return wire(ImageBuildStatus(image_id=build.image_id, status=build.status, error=build.error, events=[]))


@router.get("/{image_id}/events")
async def events(
    image_id: str,
    after: int = Query(0, ge=0),
    timeout: float = Query(25.0, ge=0, le=60),
    cp: ControlPlane = Depends(control),
) -> Response:
    build = cp.images.get(image_id)
    items = await build.wait(after, timeout)
    return wire(ImageBuildStatus(image_id=image_id, status=build.status, error=build.error, events=items))
