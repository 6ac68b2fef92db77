"""Who is asking, and what they may do.

Two kinds of credential reach the API:

- **The admin token** (``$SKIFF_HOME/token``, 0600) belongs to the server's owner: the
  CLI and the SDK outside containers. It may do everything.
- **A container token**, one per container, made when the container starts and void
  the moment it exits. The server keeps only its sha256. It is scoped to the container's
  own function, its own container routes, the volumes its function declares, the calls
  it started itself, and what any function may use by name (deployed functions through
  ``Function.from_name``, Dicts and Queues, content-addressed blobs). It can read no
  other container's data, list or touch secrets, manage tokens, or stop or deploy apps.

:data:`CONTAINER_ROUTES` is the whole policy for container tokens, route by route; a
route not in it is the admin's alone, so a new route is closed to containers until
someone decides otherwise (``tests/server/test_auth.py`` checks every route is named).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..protocol.errors import AuthError, PermissionDeniedError
from ..protocol.wire import API_PREFIX, FunctionSpec

TOKEN_HELP = ("the client reads it from $SKIFF_HOME/token (default ~/.skiff/token) or $SKIFF_TOKEN")


@dataclass(frozen=True)
class Principal:
    kind: Literal["admin", "container"]
    function_id: str = ""
    container_id: str = ""
    app_id: str = ""
    volumes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def describe(self) -> str:
        return "the admin token" if self.is_admin else f"the token of container {self.container_id}"


ADMIN = Principal(kind="admin")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Credentials:
    """The admin token, and the container tokens in force (by their sha256)."""

    def __init__(self, admin_token: str) -> None:
        self._admin = admin_token.encode()
        self._containers: dict[str, Principal] = {}  # sha256 of the token -> its scope
        self._by_container: dict[str, str] = {}  # container id -> sha256 of its token

    def mint(self, function_id: str, container_id: str, app_id: str, spec: FunctionSpec) -> str:
        """A token for one container of ``spec``; shown to the container, never stored."""
        token = "sk-c-" + secrets.token_urlsafe(32)
        digest = _digest(token)
        self._containers[digest] = Principal(
            kind="container", function_id=function_id, container_id=container_id, app_id=app_id,
            volumes=frozenset(v.name for v in spec.volumes),
        )
        self._by_container[container_id] = digest
        return token

    def revoke(self, container_id: str) -> None:
        digest = self._by_container.pop(container_id, None)
        if digest is not None:
            self._containers.pop(digest, None)

    def verify(self, authorization: str) -> Principal:
        """The principal an ``Authorization: Bearer ...`` header names, or AuthError."""
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and given:
            if hmac.compare_digest(given.encode(), self._admin):
                return ADMIN
            found = self._containers.get(_digest(given))
            if found is not None:
                return found
        raise AuthError(f"missing or wrong API token: {TOKEN_HELP}")


# -- the policy for container tokens ----------------------------------------------------

# A rule sees the principal, the route's path parameters, and a lookup of who started a
# call (the container id, or "" for the admin); it answers whether to allow.
CallOwner = Callable[[str], str | None]
Rule = Callable[[Principal, dict[str, str], CallOwner], bool]


def anyone(_p: Principal, _params: dict[str, str], _owner: CallOwner) -> bool:
    return True


def own_container(p: Principal, params: dict[str, str], _owner: CallOwner) -> bool:
    return params.get("function_id") == p.function_id and params.get("container_id") == p.container_id


def own_call(p: Principal, params: dict[str, str], owner: CallOwner) -> bool:
    return owner(params.get("call_id", "")) == p.container_id


def declared_volume(p: Principal, params: dict[str, str], _owner: CallOwner) -> bool:
    return params.get("name") in p.volumes


def _routes(rule: Rule, *routes: str) -> dict[tuple[str, str], Rule]:
    table = {}
    for route in routes:
        method, path = route.split(" ", 1)
        table[(method, API_PREFIX + path)] = rule
    return table


CONTAINER_ROUTES: dict[tuple[str, str], Rule] = {
    # Its own life: start-up, inputs and outputs, web readiness, cancellation signals.
    **_routes(own_container, *(f"{m} /functions/{{function_id}}/containers/{{container_id}}/{r}" for m, r in (
        ("GET", "hello"), ("POST", "exchange"), ("POST", "web_ready"), ("POST", "init_failure"), ("GET", "signals")))),
    # Calling deployed functions and classes (Function.from_name / Cls.from_name).
    **_routes(anyone, "GET /deployed/{app_name}/functions/{function_name}", "GET /functions/{function_id}",
              "POST /functions/{function_id}/variants", "GET /functions/{function_id}/stats", "POST /calls"),
    **_routes(own_call, "POST /calls/{call_id}/inputs", "GET /calls/{call_id}/outputs", "POST /calls/{call_id}/cancel"),
    # Payloads and volume blocks are content-addressed: an id is known only from a payload
    # or a manifest the container could already read.
    **_routes(anyone, "POST /blobs/missing", "PUT /blobs/{blob_id}", "GET /blobs/{blob_id}",
              "POST /volume-blobs/missing", "PUT /volume-blobs/{blob_id}", "GET /volume-blobs/{blob_id}",
              "POST /volume-blobs/upload", "POST /volume-blobs/download"),
    # Dicts and Queues are shared by name, as on Modal; listing and deleting them is not.
    **_routes(anyone, "POST /dicts/{name}", "POST /dicts/{name}/put", "POST /dicts/{name}/get",
              "POST /dicts/{name}/pop", "GET /dicts/{name}/len", "GET /dicts/{name}/items",
              "POST /dicts/{name}/clear", "POST /queues/{name}", "POST /queues/{name}/put",
              "GET /queues/{name}/get", "GET /queues/{name}/len", "GET /queues/{name}/peek",
              "POST /queues/{name}/clear"),
    # Volumes its function mounts, and no others.
    **_routes(declared_volume, "POST /volumes/{name}", "GET /volumes/{name}/manifest", "GET /volumes/{name}/ls",
              "POST /volumes/{name}/commit", "POST /volumes/{name}/copy", "GET /volumes/{name}/file"),
}


def authorize(principal: Principal, method: str, route: str, params: dict[str, str], owner: CallOwner) -> None:
    """Raise PermissionDeniedError unless ``principal`` may call ``method route``."""
    if principal.is_admin:
        return
    rule = CONTAINER_ROUTES.get((method, route))
    if rule is None or not rule(principal, params, owner):
        raise PermissionDeniedError(
            f"{principal.describe()} may not {method} {route}: a container's token reaches only its own "
            "function, the volumes it mounts, the calls it made, deployed functions, Dicts and Queues"
        )


__all__ = ["ADMIN", "CONTAINER_ROUTES", "Credentials", "Principal", "authorize"]
