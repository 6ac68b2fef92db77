"""SQLAlchemy models: the durable half of the control plane's state.

Inputs and outputs in flight live in memory (``server/calls.py``); what is here is what
must outlive a request: apps, functions, calls, containers (the metering record) and logs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AppRow(Base):
    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # ephemeral | deployed
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_heartbeat: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # deployed: serving version


class FunctionRow(Base):
    __tablename__ = "functions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # encode(FunctionSpec)
    created_at: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # the app version it belongs to


class CallRow(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    function_id: Mapped[str] = mapped_column(ForeignKey("functions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # pending | done | cancelled
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    num_inputs: Mapped[int] = mapped_column(Integer, default=0)
    num_failures: Mapped[int] = mapped_column(Integer, default=0)
    inputs_complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    owner: Mapped[str] = mapped_column(String(32), default="", server_default="")  # a container id, "" for admin


class CallInputBatchRow(Base):
    """Inputs of a durable call (a spawn or a map), as one request brought them; kept until
    the call is forgotten."""

    __tablename__ = "call_input_batches"

    call_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # InputItems


class CallOutputBatchRow(Base):
    """Outputs of a durable call, as one group commit wrote them, before the caller saw them."""

    __tablename__ = "call_output_batches"

    call_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # OutputItems


class ContainerRow(Base):
    """One container's life; ``stopped_at - started_at`` is what a user is metered for."""

    __tablename__ = "containers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), index=True)
    function_id: Mapped[str] = mapped_column(ForeignKey("functions.id"), index=True)
    runtime: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # running | stopped
    started_at: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class LogRow(Base):
    __tablename__ = "logs"
    __table_args__ = (Index("ix_logs_app_seq", "app_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(32))
    container_id: Mapped[str] = mapped_column(String(32))
    function: Mapped[str] = mapped_column(String(200))
    stream: Mapped[str] = mapped_column(String(8))
    ts: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)


class ProxyTokenRow(Base):
    """A proxy auth token for web endpoints: its key, and the sha256 of its secret (the
    secret itself is shown once, when the token is made)."""

    __tablename__ = "proxy_tokens"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class SecretRow(Base):
    """A secret's values, Fernet-encrypted; only its key names are stored in the clear."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    keys: Mapped[list[str]] = mapped_column(JSON)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class DictRow(Base):
    __tablename__ = "dicts"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class DictEntryRow(Base):
    __tablename__ = "dict_entries"

    dict_name: Mapped[str] = mapped_column(ForeignKey("dicts.name", ondelete="CASCADE"), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the pickled key
    key: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[float] = mapped_column(Float)


class QueueRow(Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class QueueItemRow(Base):
    __tablename__ = "queue_items"
    __table_args__ = (Index("ix_queue_items_order", "queue_name", "partition", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue_name: Mapped[str] = mapped_column(ForeignKey("queues.name", ondelete="CASCADE"))
    partition: Mapped[str] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)


class VolumeRow(Base):
    __tablename__ = "volumes"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)  # the current version
    created_at: Mapped[float] = mapped_column(Float)


class VolumeVersionRow(Base):
    """One committed state of a volume: path -> {sha256, size, mode}."""

    __tablename__ = "volume_versions"

    volume_name: Mapped[str] = mapped_column(ForeignKey("volumes.name", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    manifest: Mapped[dict[str, dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


class ScheduleRow(Base):
    """When a deployed function's schedule last fired, and when it fires next."""

    __tablename__ = "schedules"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    function: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_run_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    next_run_at: Mapped[float] = mapped_column(Float)
