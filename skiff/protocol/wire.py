"""The wire schema: every message that crosses HTTP between client, server and container.

Plain dataclasses, so the in-container runtime (standard library and cloudpickle only)
builds and reads the same messages the FastAPI server validates. A side sends
``encode(msg)`` and reads ``decode(Type, json)``, which rebuilds nested messages, so a
renamed field is a type error on every side rather than a ``KeyError`` in another
process. Pickled values travel as :class:`Payload` (see :mod:`.payload`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")

API_PREFIX = "/v1"
INLINE_PAYLOAD_LIMIT = 2 * 1024 * 1024  # bytes of pickle; bigger goes through the blob store

OutputStatus = Literal["success", "failure", "timeout", "terminated", "cancelled", "init_failure"]
AppState = Literal["ephemeral", "deployed", "stopping", "stopped"]
CallKind = Literal["remote", "spawn", "map", "generator", "schedule"]


@dataclass
class Payload:
    """A pickled value: inline (``data``, base64) or in the blob store (``blob_id``)."""

    data: str | None = None  # base64 of a cloudpickle
    blob_id: str | None = None  # sha256 of a cloudpickle in the blob store


@dataclass
class ErrorBody:
    code: str
    message: str


# -- apps ---------------------------------------------------------------------------


@dataclass
class AppCreate:
    name: str
    kind: Literal["ephemeral", "deployed"] = "ephemeral"


@dataclass
class AppDeploy:
    version: int


@dataclass
class AppInfo:
    app_id: str
    name: str
    state: str
    created_at: float
    stopped_at: float | None = None
    functions: list[str] = field(default_factory=list)
    containers: int = 0
    heartbeat_interval: float = 5.0  # how often the app's client must say it is alive
    kind: str = "ephemeral"
    version: int = 0  # deployed apps: the version serving now (AppCreate answers with the next one)
    urls: dict[str, str] = field(default_factory=dict)  # web function -> URL
    next_runs: dict[str, float] = field(default_factory=dict)  # scheduled function -> next run


# -- functions -----------------------------------------------------------------------


@dataclass
class LocalMountSpec:
    remote_path: str
    manifest: dict[str, str]  # path relative to remote_path -> sha256


@dataclass
class SecretRef:
    name: str
    required_keys: list[str] = field(default_factory=list)


@dataclass
class VolumeRef:
    name: str
    mount_path: str


@dataclass
class FunctionSpec:
    """Everything the server needs to run a function; built by ``@app.function``."""

    name: str
    module_name: str | None = None  # imported inside the container...
    qualname: str | None = None  # ...and this attribute path looked up in it
    pickled: Payload | None = None  # or the function itself, cloudpickled
    mount: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    timeout: float = 300.0
    retries: dict[str, Any] | None = None  # Retries.to_wire()
    min_containers: int = 0
    max_containers: int | None = None
    buffer_containers: int = 0
    scaledown_window: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    max_inputs: int | None = None
    is_generator: bool = False
    image: list[dict[str, Any]] | None = None  # Image steps; None is the runtime's default image
    mounts: list[LocalMountSpec] = field(default_factory=list)
    memory: int | None = None  # MiB
    cpu: float | None = None  # cores
    is_class: bool = False  # an @app.cls class: instantiate it, call methods by name
    class_params: Payload | None = None  # the instance's parameters, pickled
    max_concurrent_inputs: int = 1
    target_concurrent_inputs: int = 1
    max_batch_size: int | None = None
    batch_wait_ms: int = 0
    secrets: list[SecretRef] = field(default_factory=list)
    volumes: list[VolumeRef] = field(default_factory=list)
    gpu: str | None = None  # "A100", "H100:2", "any"
    web: dict[str, Any] | None = None  # {"type": fastapi|asgi|wsgi|server, "label", "method", ...}
    schedule: dict[str, Any] | None = None  # {"cron", "timezone"} or {"period"}
    is_template: bool = False  # a parameterized class: variants are made from it on demand


@dataclass
class FunctionCreate:
    app_id: str
    spec: FunctionSpec
    version: int = 0  # for a deployment being prepared: the version it belongs to


@dataclass
class VariantCreate:
    class_params: Payload


@dataclass
class FunctionCreated:
    function_id: str


# -- calls ---------------------------------------------------------------------------


@dataclass
class InputItem:
    idx: int
    args: Payload


@dataclass
class CallCreate:
    function_id: str
    # Chosen by the client ("fc-" and 20 letters or digits), so that sending the creation
    # again after a lost answer makes no second call.
    kind: CallKind = "remote"
    inputs: list[InputItem] = field(default_factory=list)
    inputs_complete: bool = True  # False while a map is still streaming inputs
    call_id: str | None = None


@dataclass
class CallCreated:
    call_id: str


@dataclass
class CallInputs:
    inputs: list[InputItem]
    inputs_complete: bool = False


@dataclass
class OutputItem:
    seq: int  # position in the call's output stream; the client acknowledges by seq
    idx: int  # which input this answers
    status: str  # OutputStatus
    result: Payload | None = None  # the return value, or the pickled exception
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    gen_index: int | None = None  # set for one item yielded by a generator
    gen_done: bool = False  # set on the last output of a generator input


@dataclass
class CallOutputs:
    outputs: list[OutputItem]
    done: bool  # every input has its final output and the client has them all


# -- containers ----------------------------------------------------------------------


@dataclass
class ContainerOutput:
    input_id: str
    status: str  # OutputStatus
    result: Payload | None = None
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    gen_index: int | None = None
    gen_done: bool = False


@dataclass
class ContainerExchange:
    """One round trip: hand in finished outputs, ask for up to ``want`` new inputs."""

    outputs: list[ContainerOutput] = field(default_factory=list)
    want: int = 1
    timeout: float = 25.0


@dataclass
class ContainerInput:
    input_id: str
    args: Payload


@dataclass
class ContainerWork:
    inputs: list[ContainerInput]
    stop: bool = False  # the container should finish and exit


@dataclass
class ContainerHello:
    function_id: str
    spec: FunctionSpec
    # Secret values, handed over in memory at start so they never touch the disk (an OCI
    # bundle's config.json would hold them in plain text).
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerSignals:
    cancel: list[str] = field(default_factory=list)  # input ids to interrupt
    stop: bool = False


# -- logs ----------------------------------------------------------------------------


@dataclass
class LogEntry:
    seq: int
    ts: float
    function: str
    container_id: str
    stream: str
    text: str


@dataclass
class LogBatch:
    entries: list[LogEntry]
    app_state: str


@dataclass
class ImageCreate:
    steps: list[dict[str, Any]]


@dataclass
class ImageBuildStatus:
    image_id: str
    status: str  # building | ready | failed
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AutoscalerSettings:
    min_containers: int | None = None
    max_containers: int | None = None
    buffer_containers: int | None = None
    scaledown_window: float | None = None


@dataclass
class FunctionStats:
    backlog: int
    num_total_runners: int
    num_running_inputs: int


@dataclass
class BlobsMissing:
    blob_ids: list[str]


# -- storage: secrets, dicts, queues, volumes ---------------------------------------------
# Dict and Queue values travel as base64 pickles the server stores and never unpickles.


@dataclass
class SecretCreate:
    name: str
    values: dict[str, str]
    overwrite: bool = False


@dataclass
class Ensure:
    create_if_missing: bool = False


@dataclass
class DictPut:
    items: list[list[str]]  # [[key, value], ...], base64 pickles
    skip_if_exists: bool = False


@dataclass
class DictKey:
    key: str


@dataclass
class QueuePut:
    values: list[str]
    partition: str = ""


@dataclass
class VolumeCommit:
    changes: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # path -> entry, or None: deleted


@dataclass
class VolumeCopy:
    sources: list[str]
    dest: str


# -- encoding ---------------------------------------------------------------------------
# Messages are plain dataclasses; their JSON forms are built by functions compiled once per
# type (``dataclasses.asdict`` deep-copies every value, which costs more than the round
# trip on the hot paths: a map moves tens of thousands of these a second).

Codec = Callable[[Any], Any]


def encode(msg: Any) -> dict[str, Any]:
    """A wire message as JSON-ready data."""
    result: dict[str, Any] = _encoder(type(msg))(msg)
    return result


def decode(cls: type[T], data: Any) -> T:
    """The message ``cls`` from its JSON form, nested messages rebuilt; fields it does not
    know are dropped, so an older reader accepts a newer writer's messages."""
    return typing.cast(T, _decoder(cls)(data))


_encoders: dict[Any, Codec] = {}
_decoders: dict[Any, Codec] = {}


def _identity(value: Any) -> Any:
    return value


def _hints(cls: type) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def _encoder(tp: Any) -> Codec:
    found = _encoders.get(tp)
    if found is None:
        found = _encoders[tp] = _make_encoder(tp)
    return found


def _make_encoder(tp: Any) -> Codec:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        fields = [(name, _field_encoder(hint)) for name, hint in _hints(tp).items()]

        def message(value: Any) -> dict[str, Any]:
            return {name: enc(getattr(value, name)) for name, enc in fields}

        return message
    return _field_encoder(tp)


def _field_encoder(tp: Any) -> Codec:
    if tp is Any:
        return _copy_json  # may hold anything, messages included
    if not _is_message(tp):
        return _identity  # already JSON: numbers, text, and lists and dicts of them
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return lambda value: _encoder(tp)(value)
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (Union, types.UnionType):
        inner = _field_encoder(args[0]) if len(args) == 1 else _copy_json
        return lambda value: None if value is None else inner(value)
    if origin is list:
        item = _field_encoder(args[0])
        return lambda value: [item(v) for v in value]
    if origin is dict:
        item = _field_encoder(args[1])
        return lambda value: {k: item(v) for k, v in value.items()}
    return _copy_json


def _copy_json(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_copy_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode(value)
    return value


def _decoder(tp: Any) -> Codec:
    found = _decoders.get(tp)
    if found is None:
        found = _decoders[tp] = _make_decoder(tp)
    return found


def _make_decoder(tp: Any) -> Codec:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        cls = tp
        fields = {name: (_decoder(hint) if _is_message(hint) else _identity) for name, hint in _hints(tp).items()}

        def message(value: Any) -> Any:
            if isinstance(value, cls):
                return value
            if not isinstance(value, dict):
                raise ValueError(f"{cls.__name__} must be a JSON object, got {type(value).__name__}")
            return cls(**{k: fields[k](v) for k, v in value.items() if k in fields})

        return message
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (Union, types.UnionType):
        inner = _decoder(args[0]) if len(args) == 1 else _identity
        return lambda value: None if value is None else inner(value)
    if origin is list:
        item = _decoder(args[0])
        return lambda value: [item(v) for v in value] if isinstance(value, list) else value
    if origin is dict:
        item = _decoder(args[1])
        return lambda value: {k: item(v) for k, v in value.items()} if isinstance(value, dict) else value
    return _identity


def _is_message(tp: Any) -> bool:
    if dataclasses.is_dataclass(tp):
        return True
    return any(_is_message(a) for a in typing.get_args(tp))
