"""The wire schema: every message that crosses HTTP between client, server and container.

Plain dataclasses, so the in-container runtime (standard library and cloudpickle only)
builds and reads the same messages the FastAPI server validates. Pickled payloads travel
base64-encoded in ``Payload.data``; payloads above ``INLINE_PAYLOAD_LIMIT`` go through
the blob store and travel as ``Payload.blob_id`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

API_PREFIX = "/v1"
INLINE_PAYLOAD_LIMIT = 2 * 1024 * 1024  # bytes of pickle; bigger goes through the blob store

OutputStatus = Literal["success", "failure", "timeout", "terminated", "cancelled", "init_failure"]
AppState = Literal["ephemeral", "deployed", "stopping", "stopped"]


@dataclass
class Payload:
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
    retries: dict | None = None  # Retries.to_wire()
    min_containers: int = 0
    max_containers: int | None = None
    buffer_containers: int = 0
    scaledown_window: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    max_inputs: int | None = None
    is_generator: bool = False
    image: list[dict] | None = None  # Image steps; None is the runtime's default image
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
    web: dict | None = None  # {"type": fastapi|asgi|wsgi|server, "label", "method", ...}
    schedule: dict | None = None  # {"cron", "timezone"} or {"period"}
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
    kind: Literal["remote", "spawn", "map", "generator"] = "remote"
    inputs: list[InputItem] = field(default_factory=list)
    inputs_complete: bool = True  # False while a map is still streaming inputs


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
    steps: list[dict]


@dataclass
class ImageBuildStatus:
    image_id: str
    status: str  # building | ready | failed
    error: str | None = None
    events: list[dict] = field(default_factory=list)


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
