import datetime as dt

import pytest

import skiff
from skiff.exception import InvalidError


def test_bad_cron_strings_fail_at_decoration_time_with_the_reason():
    app = skiff.App("cron-check")
    for bad, reason in [("* * *", "needs 5"), ("61 * * * *", "out of range"), ("*/0 * * * *", "bad step"),
                        ("x * * * *", "not a number")]:
        with pytest.raises(InvalidError, match=reason):
            app.function(schedule=skiff.Cron(bad))
    with pytest.raises(InvalidError, match="time zone"):
        skiff.Cron("* * * * *", timezone="Mars/Olympus")


def test_cron_next_runs():
    start = dt.datetime(2026, 11, 27, 3, 21, 30, tzinfo=dt.UTC).timestamp()
    nxt = skiff.Cron("*/5 * * * *").next_after(start)
    assert dt.datetime.fromtimestamp(nxt, dt.UTC) == dt.datetime(2026, 11, 27, 3, 25, tzinfo=dt.UTC)
    weekday = skiff.Cron("0 9 * * mon-fri").next_after(dt.datetime(2026, 11, 28, tzinfo=dt.UTC).timestamp())  # a Saturday
    assert dt.datetime.fromtimestamp(weekday, dt.UTC) == dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    paris = skiff.Cron("0 9 * * *", timezone="Europe/Paris").next_after(start)
    assert dt.datetime.fromtimestamp(paris, dt.UTC).hour == 8  # 09:00 in Paris is 08:00 UTC in winter


def test_period():
    assert skiff.Period(minutes=5).next_after(100.0) == 400.0
    with pytest.raises(InvalidError, match="at least 1 second"):
        skiff.Period(seconds=0.5)
    with pytest.raises(InvalidError, match="hours="):
        skiff.Period(hours=-1)
