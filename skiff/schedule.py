"""Schedules for deployed functions: ``Cron`` and ``Period``.

```python
@app.function(schedule=skiff.Cron("*/5 * * * *", timezone="Europe/Paris"))
def refresh(): ...

@app.function(schedule=skiff.Period(minutes=5))
def poll(): ...
```
The server runs them on time while the app is deployed. A run missed while the server
was down runs once when it comes back (not once per missed slot).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import _cron
from .exception import InvalidError

__all__ = ["Cron", "Period"]


class Cron:
    """Run on a cron schedule: ``Cron("0 9 * * mon-fri", timezone="America/New_York")``."""

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        self._spec = _cron.parse(cron_string)  # a bad string fails here, at decoration time
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidError(f"Cron(timezone={timezone!r}) is not a known IANA time zone, e.g. 'Europe/Paris'") from None
        self.cron_string = cron_string
        self.timezone = timezone

    def __repr__(self) -> str:
        return f"Cron({self.cron_string!r}, timezone={self.timezone!r})"

    def next_after(self, ts: float) -> float:
        local = dt.datetime.fromtimestamp(ts, self._zone)
        return self._spec.next_after(local).timestamp()

    def to_wire(self) -> dict[str, str]:
        return {"cron": self.cron_string, "timezone": self.timezone}


class Period:
    """Run every so often, counted from the deployment: ``Period(hours=1)``."""

    def __init__(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        for name, value in (("days", days), ("hours", hours), ("minutes", minutes), ("seconds", seconds)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidError(f"Period({name}=) must be a number of at least 0, got {value!r}")
        self.seconds = days * 86400 + hours * 3600 + minutes * 60 + seconds
        if self.seconds < 1:
            raise InvalidError(f"a Period must be at least 1 second, got {self.seconds:g} s")

    def __repr__(self) -> str:
        return f"Period(seconds={self.seconds:g})"

    def next_after(self, ts: float) -> float:
        return ts + self.seconds

    def to_wire(self) -> dict[str, float]:
        return {"period": self.seconds}


def from_wire(data: dict[str, Any]) -> Cron | Period:
    if "cron" in data:
        return Cron(data["cron"], data.get("timezone", "UTC"))
    return Period(seconds=data["period"])
