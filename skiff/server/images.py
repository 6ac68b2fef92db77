"""Image builds as the control plane tracks them: one :class:`Build` per image id, whose
events (steps, output lines, results) clients stream to show progress."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.errors import ImageBuildError, InvalidError, NotFoundError, NotSupportedError
from ..protocol.images import layer_ids
from ..protocol.node import BuiltImage

log = logging.getLogger("skiff.images")

MAX_EVENTS = 5000  # per build; a noisy step keeps its newest lines


@dataclass(eq=False)
class Build:
    image_id: str
    status: str = "building"  # building | ready | failed
    error: str | None = None
    image: BuiltImage | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    first_seq: int = 1  # seq of events[0]
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def emit(self, event: dict[str, Any]) -> None:
        event["seq"] = self.first_seq + len(self.events)
        event["ts"] = time.time()
        self.events.append(event)
        if len(self.events) > MAX_EVENTS:
            drop = len(self.events) - MAX_EVENTS
            del self.events[:drop]
            self.first_seq += drop
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, after: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            start = max(0, after + 1 - self.first_seq)
            if self.events[start:] or self.status != "building":
                return self.events[start:]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return []


class ImageBuilder(Protocol):
    """A node's image builder (``skiff.worker.images``), as the server uses it."""

    def cached(self, steps: list[dict[str, Any]]) -> BuiltImage | None:
        ...

    async def build(self, steps: list[dict[str, Any]], emit: Callable[[dict[str, Any]], None]) -> BuiltImage:
        ...


class ImageService:
    def __init__(self, builder: ImageBuilder | None) -> None:
        self.builder = builder  # None when the runtime cannot build images
        self.builds: dict[str, Build] = {}

    def _check(self, steps: list[dict[str, Any]]) -> None:
        if self.builder is None:
            raise NotSupportedError(
                "custom images need the `oci` runtime, and this server runs `process` "
                "(see `skiff server status`); remove image= or run the server as root with crun installed"
            )
        if not steps or steps[0].get("kind") != "debian_slim":
            raise InvalidError("an image must start from a base such as Image.debian_slim()")

    def start(self, steps: list[dict[str, Any]]) -> Build:
        """Start building (or find) the image; returns its build record at once."""
        self._check(steps)
        assert self.builder is not None
        image_id = layer_ids(steps)[-1]
        forced = any(s.get("force") for s in steps)
        build = self.builds.get(image_id)
        if build is not None and (build.status == "building" or (build.status == "ready" and not forced)):
            return build
        cached = self.builder.cached(steps)
        build = Build(image_id=image_id)
        self.builds[image_id] = build
        if cached is not None:
            build.status, build.image = "ready", cached
            build.emit({"type": "ready", "cached": True})
            return build
        build.task = asyncio.create_task(self._run(build, steps), name=f"build-{image_id}")
        return build

    async def _run(self, build: Build, steps: list[dict[str, Any]]) -> None:
        assert self.builder is not None
        try:
            build.image = await self.builder.build(steps, build.emit)
            build.status = "ready"
            build.emit({"type": "ready", "cached": False})
        except ImageBuildError as exc:
            build.status, build.error = "failed", str(exc)
            build.emit({"type": "failed", "error": str(exc)})
        except Exception as exc:
            log.exception("image build %s crashed", build.image_id)
            build.status, build.error = "failed", f"image build crashed: {type(exc).__name__}: {exc}"
            build.emit({"type": "failed", "error": build.error})

    def get(self, image_id: str) -> Build:
        build = self.builds.get(image_id)
        if build is None:
            raise NotFoundError(f"no image build {image_id} is known; create it with POST /v1/images")
        return build

    async def ready(self, steps: list[dict[str, Any]]) -> BuiltImage:
        """The built image for ``steps``, building it first if needed."""
        build = self.start(steps)
        if build.task is not None and build.status == "building":
            await asyncio.shield(build.task)
        if build.status != "ready" or build.image is None:
            raise ImageBuildError(build.error or "the image build failed")
        return build.image
