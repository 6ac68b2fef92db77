"""Proxy auth tokens for ``requires_proxy_auth`` web endpoints (``skiff token``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...protocol.wire import API_PREFIX
from ..control import ControlPlane
from .deps import control, require_token

router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)])


@router.post("/proxy-tokens")
async def create_token(cp: ControlPlane = Depends(control)):
    key, secret = await cp.store.run(cp.proxy_tokens.create)
    return {"key": key, "secret": secret}


@router.get("/proxy-tokens")
async def list_tokens(cp: ControlPlane = Depends(control)):
    return {"tokens": await cp.store.run(cp.proxy_tokens.list)}


@router.delete("/proxy-tokens/{key}")
async def delete_token(key: str, cp: ControlPlane = Depends(control)):
    await cp.store.run(cp.proxy_tokens.delete, key)
    return {}
