from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from ...protocol.wire import API_PREFIX, CallCreate, CallCreated, CallInputs
from ..auth import Principal
from ..control import ControlPlane
from .deps import ERRORS, control, principal, require_token, wire

router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], responses=ERRORS)


@router.post("/calls")
async def create_call(body: CallCreate, cp: ControlPlane = Depends(control),
                      who: Principal = Depends(principal)) -> Response:
    call_id = await cp.create_call(body.function_id, body.kind, body.inputs, body.inputs_complete,
                                   owner=who.container_id, call_id=body.call_id)
    return wire(CallCreated(call_id=call_id))


@router.post("/calls/{call_id}/inputs")
async def add_inputs(call_id: str, body: CallInputs, cp: ControlPlane = Depends(control)) -> Response:
    await cp.add_inputs(call_id, body.inputs, body.inputs_complete)
    return wire(None)


@router.get("/calls/{call_id}/outputs")
async def outputs(
    call_id: str,
    after: int = Query(0, ge=0, le=2**62),
    timeout: float = Query(25.0, ge=0, le=60),
    limit: int = Query(1000, ge=1, le=10000),
    cp: ControlPlane = Depends(control),
) -> Response:
    return wire(await cp.outputs(call_id, after, timeout, limit))


@router.post("/calls/{call_id}/cancel")
async def cancel(call_id: str, terminate_containers: bool = False, cp: ControlPlane = Depends(control)) -> Response:
    await cp.cancel(call_id, terminate_containers)
    return wire(None)
