"""Five-field cron expressions (minute hour day-of-month month day-of-week), standard
library only. Supports ``*``, lists, ranges, steps and month/day names."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .exception import InvalidError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_NAMES = {
    3: {n: i + 1 for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    4: {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())},
}


@dataclass(frozen=True)
class CronSpec:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_any: bool
    weekdays_any: bool

    def matches(self, t: dt.datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        day_ok = t.day in self.days
        weekday_ok = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:  # cron: if either is '*', both must match
            return day_ok and weekday_ok
        return day_ok or weekday_ok  # both restricted: either may match

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``t`` (in ``t``'s timezone)."""
        candidate = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = candidate + dt.timedelta(days=366 * 5)
        while candidate < limit:
            if candidate.month not in self.months:
                candidate = (candidate.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            elif candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0) + dt.timedelta(hours=1)
            elif self.matches(candidate):
                return candidate
            else:
                candidate += dt.timedelta(minutes=1)
        raise InvalidError("the cron expression never matches in the next five years")


def parse(expr: str) -> CronSpec:
    if not isinstance(expr, str):
        raise InvalidError(f"a cron expression must be a string, got {expr!r}")
    parts = expr.split()
    if len(parts) != 5:
        raise InvalidError(
            f"cron expression {expr!r} has {len(parts)} fields; it needs 5: minute hour day-of-month month day-of-week"
        )
    sets = [_field(parts[i], i, expr) for i in range(5)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return CronSpec(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")


def _field(text: str, index: int, expr: str) -> frozenset[int]:
    name, low, high = _FIELDS[index]
    high_allowed = 7 if index == 4 else high  # 7 is Sunday too
    values: set[int] = set()
    for item in text.split(","):
        step = 1
        if "/" in item:
            item, _, step_text = item.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidError(f"cron expression {expr!r}: bad step {step_text!r} in the {name} field")
            step = int(step_text)
        if item == "*":
            start, end = low, high
        elif "-" in item:
            a, _, b = item.partition("-")
            start, end = _value(a, index, expr), _value(b, index, expr)
        else:
            start = _value(item, index, expr)
            end = high if step > 1 else start
        if not (low <= start <= high_allowed and low <= end <= high_allowed) or start > end:
            raise InvalidError(
                f"cron expression {expr!r}: {item!r} is out of range for the {name} field ({low}-{high_allowed})"
            )
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, index: int, expr: str) -> int:
    lowered = text.lower()
    if index in _NAMES and lowered in _NAMES[index]:
        return _NAMES[index][lowered]
    if not text.isdigit():
        raise InvalidError(f"cron expression {expr!r}: {text!r} is not a number in the {_FIELDS[index][0]} field")
    return int(text)
