"""skiff.Retries: validation, backoff math, and coercion of the ``retries=`` argument."""

from __future__ import annotations

import pytest

from skiff import Retries
from skiff.exception import InvalidError


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        ({"max_retries": "3"}, "'3'"),
        ({"max_retries": True}, "True"),
        ({"max_retries": 11}, "11"),
        ({"max_retries": -1}, "-1"),
        ({"max_retries": 1, "backoff_coefficient": 0.5}, "0.5"),
        ({"max_retries": 1, "backoff_coefficient": 11.0}, "11.0"),
        ({"max_retries": 1, "initial_delay": -0.25}, "-0.25"),
        ({"max_retries": 1, "initial_delay": 61.0}, "61.0"),
        ({"max_retries": 1, "max_delay": 0.5}, "0.5"),
        ({"max_retries": 1, "max_delay": 90.0}, "90.0"),
    ],
)
def test_invalid_values_are_quoted(kwargs, quoted):
    bad = [k for k in kwargs if k != "max_retries"] or ["max_retries"]
    with pytest.raises(InvalidError) as info:
        Retries(**kwargs)
    message = str(info.value)
    assert f"{bad[0]}=" in message and quoted in message


def test_max_retries_is_keyword_only():
    with pytest.raises(TypeError):
        Retries(3)  # type: ignore[misc]


def test_defaults_and_bounds_accepted():
    r = Retries(max_retries=0)
    assert (r.max_retries, r.backoff_coefficient, r.initial_delay, r.max_delay) == (0, 2.0, 1.0, 60.0)
    Retries(max_retries=10, backoff_coefficient=10.0, initial_delay=60.0, max_delay=1.0)
    Retries(max_retries=1, backoff_coefficient=1, initial_delay=0, max_delay=60)


def test_delay_before_doubles_then_caps():
    r = Retries(max_retries=10, backoff_coefficient=2.0, initial_delay=1.0, max_delay=10.0)
    assert [r.delay_before(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_delay_before_constant_and_zero():
    assert Retries(max_retries=3, backoff_coefficient=1.0, initial_delay=2.5).delay_before(3) == 2.5
    assert Retries(max_retries=3, initial_delay=0.0).delay_before(5) == 0.0
    assert Retries(max_retries=3, backoff_coefficient=3.0, initial_delay=0.5).delay_before(3) == pytest.approx(4.5)


def test_coerce_int_means_that_many_retries_with_defaults():
    r = Retries.coerce(3)
    assert r == Retries(max_retries=3)
    assert r.delay_before(1) == 1.0 and r.delay_before(2) == 2.0
    assert Retries.coerce(0) == Retries(max_retries=0)


def test_coerce_passes_through_retries_and_none():
    policy = Retries(max_retries=2, initial_delay=0.1)
    assert Retries.coerce(policy) is policy
    assert Retries.coerce(None) is None


@pytest.mark.parametrize("bad", ["3", 2.0, True, [3], {"max_retries": 3}])
def test_coerce_bad_type_names_the_argument(bad):
    with pytest.raises(InvalidError, match=r"retries= must be an int or skiff\.Retries") as info:
        Retries.coerce(bad)
    assert repr(bad) in str(info.value)


def test_coerce_int_out_of_range():
    with pytest.raises(InvalidError, match="between 0 and 10, got 11"):
        Retries.coerce(11)


def test_wire_round_trip():
    policy = Retries(max_retries=4, backoff_coefficient=1.5, initial_delay=0.2, max_delay=5)
    assert Retries.from_wire(policy.to_wire()) == policy
    assert Retries.from_wire(None) is None


@pytest.mark.parametrize("field", ["backoff_coefficient", "initial_delay", "max_delay"])
def test_non_number_delay_fields_raise_invalid_error(field):
    with pytest.raises(InvalidError, match=f"{field}=.*'2'"):
        Retries(max_retries=1, **{field: "2"})
