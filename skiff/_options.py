"""Validation of ``@app.function(...)`` arguments, at decoration time.

Every argument Modal's decorator takes is accepted by name. Each is checked at once and
a bad value raises :class:`InvalidError` naming the argument. An argument whose
capability skiff does not have yet raises :class:`NotSupportedError` rather than being
silently ignored.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from .exception import InvalidError, NotSupportedError
from .image import Image
from .retries import Retries

if TYPE_CHECKING:
    from .schedule import Cron, Period
    from .secret import Secret
    from .volume import Volume

MAX_TIMEOUT = 24 * 3600


# Arguments whose capability arrives with a later piece of skiff, and which piece.
_NOT_YET = {
    "ephemeral_disk": "ephemeral disk limits",
    "network_file_systems": "network file systems",
    "cloud": "cloud selection",
    "region": "region selection",
    "proxy": "proxies",
    "enable_memory_snapshot": "memory snapshots",
    "block_network": "network blocking (it needs the `oci` runtime)",
    "i6pn": "private container networking",
}

# Older names Modal still accepts, and their current names.
_DEPRECATED = {
    "concurrency_limit": "max_containers",
    "keep_warm": "min_containers",
    "container_idle_timeout": "scaledown_window",
}


@dataclass
class FunctionOptions:
    timeout: float = 300.0
    retries: Retries | None = None
    min_containers: int = 0
    max_containers: int | None = None
    buffer_containers: int = 0
    scaledown_window: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    max_inputs: int | None = None
    name: str | None = None
    serialized: bool = False
    image: Image | None = None
    memory: int | None = None  # MiB
    cpu: float | None = None  # cores
    # From @skiff.concurrent and @skiff.batched:
    max_concurrent_inputs: int = 1
    target_concurrent_inputs: int = 1
    max_batch_size: int | None = None
    batch_wait_ms: int = 0
    gpu: str | None = None  # one spec; of a list, the server takes the first it can give
    schedule: Cron | Period | None = None
    web: dict[str, Any] | None = None  # from the web decorators
    secrets: list[Secret] = field(default_factory=list)
    volumes: dict[str, Volume] = field(default_factory=dict)  # mount path -> volume

    def with_marks(self, marks: dict[str, Any]) -> FunctionOptions:
        """These options plus what ``@skiff.concurrent`` / ``@skiff.batched`` said."""
        from dataclasses import replace

        if "max_concurrent" in marks and "max_batch_size" in marks:
            raise InvalidError("a function can be @skiff.concurrent or @skiff.batched, not both")
        return replace(
            self,
            max_concurrent_inputs=marks.get("max_concurrent", self.max_concurrent_inputs),
            target_concurrent_inputs=marks.get("target_concurrent", self.target_concurrent_inputs),
            max_batch_size=marks.get("max_batch_size", self.max_batch_size),
            batch_wait_ms=marks.get("batch_wait_ms", self.batch_wait_ms),
            web=marks.get("web", self.web),
        )


@overload
def _int(name: str, value: Any, *, minimum: int, allow_none: Literal[False] = False) -> int: ...
@overload
def _int(name: str, value: Any, *, minimum: int, allow_none: bool) -> int | None: ...
def _int(name: str, value: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(f"{name}= must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InvalidError(f"{name}= must be at least {minimum}, got {value}")
    return value


def _seconds(name: str, value: Any, *, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidError(f"{name}= must be a number of seconds, got {type(value).__name__} {value!r}")
    if not 0 < value <= maximum:
        raise InvalidError(f"{name}= must be more than 0 and at most {maximum:g} seconds, got {value!r}")
    return float(value)


def validate_gpu(gpu: Any) -> None:
    from .protocol.gpus import parse_request  # the server parses it the same way

    specs = gpu if isinstance(gpu, list) else [gpu]
    for spec in specs:
        if not isinstance(spec, str) or not spec:
            raise InvalidError(f"gpu= must look like 'A100', 'A100-80GB', 'H100:2' or 'any' (or a list of those), got {spec!r}")
        parse_request(spec)


def _check_not_yet(name: str, value: Any) -> None:
    if name == "ephemeral_disk":
        parts = value if isinstance(value, tuple) else (value,)
        if not all(isinstance(p, int | float) and not isinstance(p, bool) and p > 0 for p in parts):
            raise InvalidError(f"{name}= must be a positive number or a (request, limit) pair, got {value!r}")
    elif name == "network_file_systems" and not isinstance(value, dict):
        raise InvalidError(f"{name}= must be a dict of mount path -> volume, got {type(value).__name__}")
    raise NotSupportedError(
        f"{name}= is not supported yet: skiff does not have {_NOT_YET[name]} today. "
        f"Remove {name}= to run the function without it."
    )


def build_options(given: dict[str, Any]) -> FunctionOptions:
    """Check every argument given to ``@app.function`` and return the resulting options."""
    given = {k: v for k, v in given.items() if v is not None}
    for old, new in _DEPRECATED.items():
        if old in given:
            warnings.warn(
                f"{old}= is deprecated; use {new}= instead (it means the same)",
                DeprecationWarning,
                stacklevel=3,  # build_options <- App.function <- the user's decorator line
            )
            if new in given:
                raise InvalidError(f"pass {new}= or its old name {old}=, not both")
            given[new] = given.pop(old)
    if given.pop("allow_concurrent_inputs", None) is not None:
        raise NotSupportedError("allow_concurrent_inputs= is not supported yet: concurrent inputs arrive with @skiff.concurrent")
    for name in list(given):
        if name in _NOT_YET:
            _check_not_yet(name, given[name])

    opts = FunctionOptions()
    if "timeout" in given:
        opts.timeout = _seconds("timeout", given.pop("timeout"), maximum=MAX_TIMEOUT)
    if "retries" in given:
        opts.retries = Retries.coerce(given.pop("retries"))
    if "min_containers" in given:
        opts.min_containers = _int("min_containers", given.pop("min_containers"), minimum=0)
    if "max_containers" in given:
        opts.max_containers = _int("max_containers", given.pop("max_containers"), minimum=1)
    if "buffer_containers" in given:
        opts.buffer_containers = _int("buffer_containers", given.pop("buffer_containers"), minimum=0)
    if "scaledown_window" in given:
        opts.scaledown_window = _seconds("scaledown_window", given.pop("scaledown_window"), maximum=MAX_TIMEOUT)
    if "max_inputs" in given:
        opts.max_inputs = _int("max_inputs", given.pop("max_inputs"), minimum=1)
    if "env" in given:
        env = given.pop("env")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise InvalidError(f"env= must be a dict of str to str, got {env!r}")
        opts.env = dict(env)
    if "name" in given:
        name = given.pop("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidError(f"name= must be a Python identifier, got {name!r}")
        opts.name = name
    if "image" in given:
        image = given.pop("image")
        if not isinstance(image, Image):
            raise InvalidError(f"image= must be a skiff.Image, e.g. skiff.Image.debian_slim(), got {type(image).__name__}")
        image.to_wire()  # checks it starts from a base
        opts.image = image
    if "memory" in given:
        memory = given.pop("memory")
        request = memory[1] if isinstance(memory, tuple) and len(memory) == 2 else memory
        if isinstance(request, bool) or not isinstance(request, int) or request < 16:
            raise InvalidError(f"memory= must be a number of MiB (at least 16), or a (request, limit) pair, got {memory!r}")
        opts.memory = request
    if "cpu" in given:
        cpu = given.pop("cpu")
        limit = cpu[1] if isinstance(cpu, tuple) and len(cpu) == 2 else cpu
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit <= 512:
            raise InvalidError(f"cpu= must be a number of cores above 0, or a (request, limit) pair, got {cpu!r}")
        opts.cpu = float(limit)
    if "gpu" in given:
        gpu = given.pop("gpu")
        validate_gpu(gpu)
        opts.gpu = gpu[0] if isinstance(gpu, list) else gpu
    if "schedule" in given:
        from .schedule import Cron, Period

        schedule = given.pop("schedule")
        if not isinstance(schedule, Cron | Period):
            raise InvalidError(f"schedule= must be skiff.Cron(...) or skiff.Period(...), got {schedule!r}")
        opts.schedule = schedule
    if "secrets" in given:
        from .secret import Secret

        secrets = given.pop("secrets")
        if not isinstance(secrets, list | tuple) or not all(isinstance(x, Secret) for x in secrets):
            raise InvalidError(f"secrets= must be a list of skiff.Secret, got {secrets!r}")
        opts.secrets = list(secrets)
    if "volumes" in given:
        from .volume import Volume

        volumes = given.pop("volumes")
        if not isinstance(volumes, dict):
            raise InvalidError(f"volumes= must be a dict of mount path -> skiff.Volume, got {type(volumes).__name__}")
        for path, vol in volumes.items():
            if not isinstance(vol, Volume):
                raise InvalidError(f"volumes={{{path!r}: ...}} must be a skiff.Volume, got {vol!r}")
            if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") in ("", "/root", "/opt/skiff", "/proc", "/dev", "/sys", "/tmp"):
                raise InvalidError(f"volumes= mount path {path!r} must be an absolute path outside /, /root, /tmp and system directories")
        opts.volumes = dict(volumes)
    if "serialized" in given:
        opts.serialized = bool(given.pop("serialized"))
    if opts.max_containers is not None and opts.min_containers > opts.max_containers:
        raise InvalidError(
            f"min_containers={opts.min_containers} is more than max_containers={opts.max_containers}"
        )
    if given:  # pragma: no cover - the decorator's signature only lets known names through
        raise InvalidError(f"unknown @app.function argument(s): {', '.join(sorted(given))}")
    return opts
