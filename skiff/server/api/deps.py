"""What every route needs: the control plane, and a token check."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ...protocol.errors import AuthError
from ..control import ControlPlane

try:
    import orjson as _json  # noqa: F401

    def _dumps(obj: Any) -> bytes:
        return _json.dumps(obj)
except ImportError:  # pragma: no cover - orjson is optional
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


async def control(request: Request) -> ControlPlane:
    return request.app.state.control


async def require_token(request: Request) -> None:  # async: no thread-pool hop per request
    expected: str = request.app.state.token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError(
            "missing or wrong API token: the client reads it from $SKIFF_HOME/token "
            "(default ~/.skiff/token) or $SKIFF_TOKEN"
        )


def wire(obj: Any) -> Response:
    """Serialize a wire dataclass (or a list of them) straight to JSON, skipping FastAPI's
    slower generic encoder on the hot paths."""
    if isinstance(obj, list):
        body = [asdict(o) for o in obj]
    elif obj is None:
        body = {}
    else:
        body = asdict(obj)
    return Response(content=_dumps(body), media_type="application/json")
