"""Routes the in-container runtime calls: its spec, its input/output exchange, its
cancellation signals, and (for a web function) that its socket is listening."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...protocol.wire import API_PREFIX, ContainerExchange, ContainerOutput
from ..control import ControlPlane
from .deps import ERRORS, control, require_token, wire

router = APIRouter(prefix=API_PREFIX + "/functions/{function_id}/containers/{container_id}",
                   dependencies=[Depends(require_token)], responses=ERRORS)


@router.get("/hello")
async def hello(function_id: str, container_id: str, cp: ControlPlane = Depends(control)) -> Response:
    return wire(cp.container_hello(function_id, container_id))


@router.post("/exchange")
async def exchange(function_id: str, container_id: str, body: ContainerExchange,
                   cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.container_exchange(function_id, container_id, body))


@router.post("/web_ready")
async def web_ready(function_id: str, container_id: str, cp: ControlPlane = Depends(control)) -> Response:
    cp.container_web_ready(function_id, container_id)
    return wire(None)


@router.post("/init_failure")
async def init_failure(function_id: str, container_id: str, body: ContainerOutput,
                       cp: ControlPlane = Depends(control)) -> Response:
    cp.container_init_failed(function_id, container_id, body)
    return wire(None)


@router.get("/signals")
async def signals(function_id: str, container_id: str, timeout: float = Query(20.0, ge=0, le=60),
                  cp: ControlPlane = Depends(control)) -> Response:
    return wire(await cp.container_signals(function_id, container_id, timeout))
