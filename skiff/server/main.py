"""Builds the FastAPI application and runs it under uvicorn: ``skiff server start``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..protocol import VERSION as __version__
from ..protocol import config
from ..protocol.errors import Error
from ..worker.runtime import ContainerRuntime, select_runtime
from .api import routers
from .control import ControlPlane
from .gateway import Gateway
from .store import Store

log = logging.getLogger("skiff.server")


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


def api_socket_path(home: Path) -> Path:
    """The Unix socket containers reach the API through (mounted into oci containers)."""
    return home / "run" / "api.sock"


def build_app(
    *,
    home: Path | None = None,
    database_url: str | None = None,
    runtime: ContainerRuntime | None = None,
    public_url: str | None = None,
) -> FastAPI:
    home = home or config.home()
    home.mkdir(parents=True, exist_ok=True)
    token = ensure_token(home)
    database_url = database_url or config.database_url()
    api_socket = api_socket_path(home)
    notes: list[str] = []
    if runtime is None:
        runtime, notes = select_runtime(os.environ.get("SKIFF_RUNTIME"), home, api_socket)
    public_url = public_url or config.server_url()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = Store(database_url)
        await store.run(store.migrate)
        control = ControlPlane(store, home, runtime, public_url, token)
        await control.start()
        app.state.control = control
        inventory = control.ctx.placement.gpus
        if inventory:
            models = ", ".join(sorted({g.model for g in inventory}))
            notes.append(f"GPUs: {len(inventory)} ({models}), from {control.gpu_source}")
        for note in notes:
            log.info("%s", note)
        log.info("skiff server ready: %s, runtime %s, database %s", public_url, runtime.name,
                 store.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            await control.close()
            store.close()

    app = FastAPI(title="skiff", version=__version__, lifespan=lifespan)
    app.state.token = token
    for router in routers:
        app.include_router(router)

    @app.get("/v1/health")
    async def health():
        return {"ok": True, "version": __version__, "runtime": runtime.name, "notes": notes}

    @app.exception_handler(Error)
    async def skiff_error(_request: Request, exc: Error):
        return JSONResponse({"code": exc.code, "message": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()[:5]
        )
        return JSONResponse({"code": "invalid", "message": f"malformed request: {problems}"}, status_code=422)

    gateway = Gateway(lambda: app.state.control)

    async def dispatch(scope: dict, receive, send) -> None:
        """``/v1/...`` is the API; every other path is a web endpoint, via the gateway."""
        try:
            if scope["type"] in ("http", "websocket") and not scope["path"].startswith("/v1/"):
                await gateway(scope, receive, send)
            else:
                await app(scope, receive, send)
        except asyncio.CancelledError:
            if not getattr(app.state, "shutting_down", False) or scope["type"] != "http":
                raise
            # The server is stopping and cut this request off (a long-poll, mostly): answer
            # it rather than leave a traceback per open request in the log.
            with contextlib.suppress(Exception):  # the response may have started already
                await send({"type": "http.response.start", "status": 503,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": b"the skiff server is shutting down\n"})

    dispatch.state = app.state  # type: ignore[attr-defined]  # tests and tools reach the control plane here
    return dispatch  # type: ignore[return-value]


def serve(host: str, port: int, *, log_level: str = "info") -> None:
    """Serve the API on ``host:port`` and, for containers, on a Unix socket in SKIFF_HOME."""
    import socket

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
                         timeout_graceful_shutdown=2)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            app.state.shutting_down = True  # requests cut off from here on get a 503 (see dispatch)
            await super().shutdown(sockets)

    server = Server(cfg)
    server.run(sockets=[tcp, unix])  # run(), not asyncio.run(serve()): it installs uvloop
