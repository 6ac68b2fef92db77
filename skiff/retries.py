"""Retry policies: ``retries=3`` or ``retries=skiff.Retries(...)`` on a function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .exception import InvalidError

__all__ = ["Retries"]


@dataclass(frozen=True)
class Retries:
    """How many times a failed input is tried again, and how long to wait between tries.

    The delay before retry ``n`` (1-based) is
    ``min(initial_delay * backoff_coefficient ** (n - 1), max_delay)``.

    ```python
    @app.function(retries=skiff.Retries(max_retries=3, backoff_coefficient=2.0, initial_delay=1.0))
    def flaky(): ...
    ```
    """

    max_retries: int
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0

    def __init__(
        self,
        *,
        max_retries: int,
        backoff_coefficient: float = 2.0,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise InvalidError(f"Retries(max_retries=) must be an int, got {max_retries!r}")
        if not 0 <= max_retries <= 10:
            raise InvalidError(f"Retries(max_retries=) must be between 0 and 10, got {max_retries}")
        for name, value in (("backoff_coefficient", backoff_coefficient), ("initial_delay", initial_delay),
                            ("max_delay", max_delay)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidError(f"Retries({name}=) must be a number, got {type(value).__name__} {value!r}")
        if not 1.0 <= backoff_coefficient <= 10.0:
            raise InvalidError(
                f"Retries(backoff_coefficient=) must be between 1.0 and 10.0, got {backoff_coefficient!r}"
            )
        if not 0.0 <= initial_delay <= 60.0:
            raise InvalidError(f"Retries(initial_delay=) must be between 0 and 60 s, got {initial_delay!r}")
        if not 1.0 <= max_delay <= 60.0:
            raise InvalidError(f"Retries(max_delay=) must be between 1 and 60 s, got {max_delay!r}")
        object.__setattr__(self, "max_retries", max_retries)
        object.__setattr__(self, "backoff_coefficient", float(backoff_coefficient))
        object.__setattr__(self, "initial_delay", float(initial_delay))
        object.__setattr__(self, "max_delay", float(max_delay))

    def delay_before(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (the first retry is 1)."""
        delay = self.initial_delay * self.backoff_coefficient ** (retry_number - 1)
        return min(delay, self.max_delay)

    @classmethod
    def coerce(cls, value: int | Retries | None) -> Retries | None:
        """Turn the ``retries=`` decorator argument into a policy, or explain what is wrong."""
        if value is None:
            return None
        if isinstance(value, Retries):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            # Modal's meaning of a bare int: that many retries, starting 1 s apart, doubling.
            return cls(max_retries=value)
        raise InvalidError(
            f"retries= must be an int or skiff.Retries(...), got {type(value).__name__} {value!r}"
        )

    def to_wire(self) -> dict[str, float]:
        return {
            "max_retries": self.max_retries,
            "backoff_coefficient": self.backoff_coefficient,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> Retries | None:
        if data is None:
            return None
        fields = {"max_retries", "backoff_coefficient", "initial_delay", "max_delay"}
        if not isinstance(data, dict) or set(data) - fields or "max_retries" not in data:
            raise InvalidError(f"retries must be an object with the fields {sorted(fields)}, got {data!r}")
        return cls(**data)
