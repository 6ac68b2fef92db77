"""Runtime ``process``: each container is a plain subprocess of the host's Python.

It has no isolation, no resource limits and no images; it exists for machines without
root or Linux, and for fast development loops.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from ...protocol.webproto import SOCKET_NAME
from .base import Capabilities, ContainerHandle, ContainerRequest, ExitSink, LogSink

_LINE_LIMIT = 1 << 20


class ProcessRuntime:
    name = "process"
    capabilities = Capabilities(isolation=False, resource_limits=False, images=False, gpu=False)

    async def start(self, req: ContainerRequest, on_log: LogSink, on_exit: ExitSink) -> ContainerHandle:
        env = dict(os.environ)
        env.pop("SKIFF_DATABASE_URL", None)
        env.update(req.env)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(req.code_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "SKIFF_SERVER_URL": req.server_url,
                "SKIFF_TOKEN": req.token,
                "SKIFF_CONTAINER_ID": req.container_id,
                "SKIFF_FUNCTION_ID": req.function_id,
                "SKIFF_IS_CONTAINER": "1",
            }
        )
        if req.web_dir is not None:
            env["SKIFF_WEB_SOCKET"] = str(req.web_dir / SOCKET_NAME)
        if req.gpus:  # no isolation here: the driver is told which devices to use
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g.index) for g in req.gpus)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "skiff._container",
            cwd=str(req.code_dir),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so kill() takes its children too
            limit=_LINE_LIMIT,
        )
        handle = ContainerHandle(container_id=req.container_id, pid=proc.pid, native=proc)
        readers = [
            asyncio.create_task(pump_lines(proc.stdout, req.container_id, "stdout", on_log)),
            asyncio.create_task(pump_lines(proc.stderr, req.container_id, "stderr", on_log)),
        ]

        async def watch() -> None:
            code = await proc.wait()
            await asyncio.gather(*readers, return_exceptions=True)
            await on_exit(req.container_id, code, False)

        asyncio.create_task(watch(), name=f"watch-{req.container_id}")
        return handle

    async def kill(self, handle: ContainerHandle) -> None:
        try:
            os.killpg(handle.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def pump_lines(stream: asyncio.StreamReader | None, container_id: str, name: str, on_log: LogSink) -> None:
    if stream is None:
        return
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the limit: pass it on in pieces
            line = await stream.read(_LINE_LIMIT)
        if not line:
            return
        on_log(container_id, name, line.decode("utf-8", "replace").rstrip("\n"))
