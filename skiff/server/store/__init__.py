"""Durable state, behind one class: :class:`Store`."""

from .database import Store

__all__ = ["Store"]
