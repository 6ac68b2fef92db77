"""Metering: container time per function over a window (``skiff usage``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from ...protocol.wire import API_PREFIX
from ..control import ControlPlane
from ..usage import usage
from .deps import ERRORS, control, require_token

router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], responses=ERRORS)


@router.get("/usage")
async def get_usage(since: float = Query(0.0, ge=0, description="window start, Unix seconds"),
                    until: float | None = Query(None, ge=0, description="window end, Unix seconds (default: now)"),
                    app: str | None = Query(None, description="only this app's name"),
                    cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    rows = await cp.store.run(usage, cp.store, since, until, app)
    return {"functions": [r.to_dict() for r in rows]}
