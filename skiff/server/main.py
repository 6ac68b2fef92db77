"""Builds the FastAPI application and runs it under uvicorn: ``skiff server start``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..protocol import VERSION as __version__
from ..protocol import config
from ..protocol.errors import Error
from .api import routers
from .control import ControlPlane
from .gateway import Gateway
from .placement import LocalPlacement
from .store import Store

log = logging.getLogger("skiff.server")

# The folders the server keeps in its home, made 0700 before anything is put in them.
HOME_DIRS = ("blobs", "containers", "images", "mounts", "run", "volume-blobs", "volume-trees")


def ensure_token(home: Path) -> str:
    """The server's API token, made on first start and readable by its owner only."""
    path = home / "token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def keep_private(home: Path) -> None:
    """The server's home and every folder in it are its owner's alone: they hold the
    database, blobs, volumes, secrets' key, containers' bundles and tokens."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    for name in HOME_DIRS:
        (home / name).mkdir(exist_ok=True, mode=0o700)
    for entry in os.scandir(home):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)
        elif entry.is_file(follow_symlinks=False) and (entry.name in ("token", "secret.key", "server.log")
                                                        or entry.name.startswith("skiff.db")):
            os.chmod(entry.path, 0o600)


def private_file(path: Path) -> None:
    """Create ``path`` (if it is not there) readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def api_socket_path(home: Path) -> Path:
    """The Unix socket containers reach the API through (mounted into oci containers)."""
    return home / "run" / "api.sock"


def build_app(
    *,
    home: Path | None = None,
    database_url: str | None = None,
    placement: LocalPlacement | None = None,
    public_url: str | None = None,
) -> ServerApp:
    home = home or config.home()
    keep_private(home)
    token = ensure_token(home)
    database_url = database_url or config.database_url()
    if database_url.startswith("sqlite:///"):
        private_file(Path(database_url.removeprefix("sqlite:///")))  # its -wal and -shm take its mode
    api_socket = api_socket_path(home)
    notes: list[str] = []
    if placement is None:
        placement, notes = LocalPlacement.on_this_machine(home, api_socket)
    public_url = public_url or config.server_url()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(database_url)
        await store.run(store.migrate)
        control = ControlPlane(store, home, placement, public_url, token)
        await control.start()
        app.state.control = control
        inventory = placement.gpus
        if inventory:
            models = ", ".join(sorted({g.model for g in inventory}))
            notes.append(f"GPUs: {len(inventory)} ({models}), from {placement.gpu_source}")
        for note in notes:
            log.info("%s", note)
        log.info("skiff server ready: %s, runtime %s, database %s", public_url, placement.name,
                 store.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            await control.close()
            store.close()

    app = FastAPI(title="skiff", version=__version__, lifespan=lifespan)
    app.add_middleware(InternalErrors)
    app.add_middleware(AllowedMethods)
    app.state.token = token
    for router in routers:
        app.include_router(router)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "runtime": placement.name, "notes": notes}

    @app.exception_handler(Error)
    async def skiff_error(_request: Request, exc: Error) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(DBAPIError)
    async def database_refused(_request: Request, exc: DBAPIError) -> JSONResponse:
        """A value the database cannot hold (a number out of range, a NUL in text) or a
        clash with a row written meanwhile: the request's fault, not the server's."""
        if isinstance(exc, IntegrityError):
            return JSONResponse({"code": "conflict", "message": "the request clashes with data written meanwhile; "
                                 "try again"}, status_code=409)
        if isinstance(exc, DataError):
            return JSONResponse({"code": "invalid", "message": f"a value in the request cannot be stored: "
                                 f"{str(exc.orig).splitlines()[0][:200]}"}, status_code=422)
        raise exc

    @app.exception_handler(OverflowError)
    async def number_too_big(_request: Request, exc: OverflowError) -> JSONResponse:
        return JSONResponse({"code": "invalid", "message": f"a number in the request is out of range: {exc}"},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own refusals (a body that is not JSON, a method a path lacks), in
        the same ErrorBody as every other error."""
        code = {400: "invalid", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid")
        return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()[:5]
        )
        return JSONResponse({"code": "invalid", "message": f"malformed request: {problems}"}, status_code=422)

    return ServerApp(app, Gateway(lambda: app.state.control))


class AllowedMethods:
    """A 405 names every method the path has (Starlette names only the first route's),
    as the API's schema lists them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: list[tuple[re.Pattern[str], list[str]]] | None = None

    def _allowed(self, api: FastAPI, path: str) -> list[str]:
        if self._paths is None:
            self._paths = [(compile_path(template)[0], sorted(m.upper() for m in ops))
                           for template, ops in api.openapi()["paths"].items()]
        return sorted({m for pattern, methods in self._paths if pattern.match(path) for m in methods})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def fix_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self._allowed(scope["app"], scope["path"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", ", ".join(methods).encode())]}
            await send(message)

        await self.app(scope, receive, fix_allow)


class InternalErrors:
    """A bug answers 500 with its class and message, and the connection stays open.

    Without this, Starlette re-raises after its own 500 and uvicorn then closes the
    keep-alive connection, so the client's next, unrelated request on it fails too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = json.dumps({"code": "internal", "message": f"the server failed: {type(exc).__name__}: {exc}"})
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body.encode()})


# Seconds an idle keep-alive connection is kept. Longer than clients keep theirs (the SDK's
# IDLE_EXPIRY_S), so a client never sends on a connection the server is closing: with
# uvicorn's 5 s default, a client pool idling about as long lost requests to that race.
KEEP_ALIVE_S = 75
API_PATHS = ("/v1/", "/openapi.json")  # the API's; every other path is a web endpoint's


class ServerApp:
    """The server's ASGI application: ``/v1/...`` is the API, every other path a web
    endpoint, through the gateway. ``state`` is the API's (tests and tools reach the
    control plane there)."""

    def __init__(self, api: FastAPI, gateway: Gateway) -> None:
        self.api = api
        self.gateway = gateway
        self.state = api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["type"] in ("http", "websocket") and not scope["path"].startswith(API_PATHS):
                await self.gateway(scope, receive, send)
            else:
                await self.api(scope, receive, send)
        except asyncio.CancelledError:
            if not getattr(self.state, "shutting_down", False) or scope["type"] != "http":
                raise
            # The server is stopping and cut this request off (a long-poll, mostly): answer
            # it rather than leave a traceback per open request in the log.
            with contextlib.suppress(Exception):  # the response may have started already
                await send({"type": "http.response.start", "status": 503,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body",
                            "body": b'{"code":"unavailable","message":"the skiff server is shutting down"}'})


def serve(host: str, port: int, *, log_level: str = "info") -> None:
    """Serve the API on ``host:port`` and, for containers, on a Unix socket in SKIFF_HOME."""

    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    public_url = os.environ.get("SKIFF_SERVER_URL") or f"http://{host}:{port}"
    home = config.home()
    app = build_app(home=home, public_url=public_url)

    # IPPROTO_TCP, not 0: asyncio turns on TCP_NODELAY only for sockets that say so, and
    # without it every response waits ~40 ms on Nagle and delayed ACKs.
    tcp = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, port))
    path = api_socket_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    os.chmod(path, 0o666)  # containers run as their own root; the token still guards every route
    cfg = uvicorn.Config(app, log_level="warning", access_log=False, loop="uvloop", http="httptools",
                         timeout_keep_alive=KEEP_ALIVE_S,
                         timeout_graceful_shutdown=2)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.state.shutting_down = True  # requests cut off from here on get a 503 (see dispatch)
            await super().shutdown(sockets)

    server = Server(cfg)
    server.run(sockets=[tcp, unix])  # run(), not asyncio.run(serve()): it installs uvloop
