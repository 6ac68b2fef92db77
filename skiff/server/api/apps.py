from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...protocol.wire import (
    API_PREFIX,
    AppCreate,
    AppDeploy,
    AutoscalerSettings,
    FunctionCreate,
    FunctionCreated,
    VariantCreate,
)
from ..control import ControlPlane
from .deps import ERRORS, control, require_token, wire

router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], responses=ERRORS)


@router.post("/apps")
async def create_app(body: AppCreate, cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.create_app(body.name, body.kind))


@router.get("/apps")
async def list_apps(cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.list_apps())


@router.get("/apps/{name_or_id}")
async def get_app(name_or_id: str, cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.app_info(name_or_id))


@router.post("/apps/{app_id}/heartbeat")
async def heartbeat(app_id: str, cp: ControlPlane = Depends(control)) -> Response:
    await cp.heartbeat(app_id)
    return wire(None)


@router.post("/apps/{app_id}/stop")
async def stop_app(app_id: str, cp: ControlPlane = Depends(control)) -> Response:
    await cp.stop_app(app_id)
    return wire(None)


@router.get("/apps/{app_id}/logs")
async def logs(
    app_id: str,
    after: int = Query(0, ge=0, le=2**62),
    timeout: float = Query(25.0, ge=0, le=60),
    cp: ControlPlane = Depends(control),
) -> Response:
    return wire(await cp.read_logs(app_id, after, timeout))


@router.post("/functions")
async def create_function(body: FunctionCreate, cp: ControlPlane = Depends(control)) -> Response:
    return wire(FunctionCreated(function_id=await cp.create_function(body.app_id, body.spec, body.version)))


@router.post("/apps/{app_id}/deploy")
async def deploy(app_id: str, body: AppDeploy, cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.deployments.activate(app_id, body.version))


@router.get("/deployed/{name}/history")
async def history(name: str, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return await cp.deployments.history(name)


@router.post("/deployed/{name}/rollback")
async def rollback(name: str, version: int | None = Query(None, ge=1, le=2**31),
                   cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.deployments.rollback(name, version))


@router.get("/deployed/{app_name}/functions/{function_name}")
async def lookup(app_name: str, function_name: str, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return await cp.function_info(await cp.deployments.lookup(app_name, function_name))


@router.get("/functions/{function_id}")
async def function_info(function_id: str, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return await cp.function_info(function_id)


@router.post("/functions/{function_id}/variants")
async def variant(function_id: str, body: VariantCreate, cp: ControlPlane = Depends(control)) -> Response:
    return wire(FunctionCreated(function_id=await cp.deployments.variant(function_id, body.class_params)))


@router.post("/functions/{function_id}/autoscaler")
async def update_autoscaler(function_id: str, body: AutoscalerSettings,
                            cp: ControlPlane = Depends(control)) -> Response:
    cp.update_autoscaler(function_id, body)
    return wire(None)


@router.get("/functions/{function_id}/stats")
async def function_stats(function_id: str, cp: ControlPlane = Depends(control)) -> Response:
    return wire(cp.function_stats(function_id))
