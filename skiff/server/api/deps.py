"""What every route needs: the control plane, and a token check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from fastapi.responses import Response

from ...protocol.wire import ErrorBody, encode
from ..auth import Principal, authorize
from ..control import ControlPlane

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

M = TypeVar("M", bound="DataclassInstance")  # a wire message

try:
    import orjson as _json  # noqa: F401

    def _dumps(obj: Any) -> bytes:
        data: bytes = _json.dumps(obj)  # typed as bytes: orjson may be absent (untyped) when mypy runs
        return data
except ImportError:  # pragma: no cover - orjson is optional
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


# Every route may answer these, each with an ErrorBody naming what was wrong.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "a value is not valid: the message names it"),
        (401, "missing or wrong API token"),
        (403, "the token may not do this (a container's token reaches only its own work)"),
        (404, "no such object, or it was deleted"),
        (408, "waited longer than allowed"),
        (409, "clashes with the object's current state"),
        (410, "the output is no longer held"),
        (422, "a malformed request body or parameter"),
        (503, "the server is shutting down"),
    )
}


# A route whose answer is raw bytes (a blob, a file, a batch of blocks).
BYTES: dict[int | str, dict[str, Any]] = {200: {"description": "the bytes", "content": {"application/octet-stream": {}}}}


async def control(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.control  # set by main.py at start-up
    return cp


async def require_token(request: Request) -> Principal:  # async: no thread-pool hop per request
    """Who is asking (the admin, or one container), checked against the route they asked
    for: a container's token opens only the routes :mod:`skiff.server.auth` lists."""
    cp: ControlPlane = request.app.state.control
    principal = cp.credentials.verify(request.headers.get("authorization", ""))
    if not principal.is_admin:
        route = request.scope.get("route")
        authorize(principal, request.method, getattr(route, "path", ""), dict(request.path_params), cp.call_owner)
    request.state.principal = principal
    return principal


async def principal(request: Request) -> Principal:
    """The caller :func:`require_token` let in (routes that record who did something)."""
    who: Principal = getattr(request.state, "principal", None) or await require_token(request)
    return who


def wire(obj: M | list[M] | None) -> Response:
    """Serialize a wire dataclass (or a list of them) straight to JSON, skipping FastAPI's
    slower generic encoder on the hot paths."""
    body: list[dict[str, Any]] | dict[str, Any]
    if isinstance(obj, list):
        body = [encode(o) for o in obj]
    elif obj is None:
        body = {}
    else:
        body = encode(obj)
    return Response(content=_dumps(body), media_type="application/json")
