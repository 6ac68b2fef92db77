"""Proxy auth tokens for ``requires_proxy_auth`` web endpoints (``skiff token``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from ...protocol.wire import API_PREFIX
from ..control import ControlPlane
from .deps import ERRORS, control, require_token

router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], responses=ERRORS)


@router.post("/proxy-tokens")
async def create_token(cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    key, secret = await cp.store.run(cp.proxy_tokens.create)
    return {"key": key, "secret": secret}


@router.get("/proxy-tokens")
async def list_tokens(cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    return {"tokens": await cp.store.run(cp.proxy_tokens.list)}


@router.delete("/proxy-tokens/{key}")
async def delete_token(key: str, cp: ControlPlane = Depends(control)) -> dict[str, Any]:
    await cp.store.run(cp.proxy_tokens.delete, key)
    return {}
