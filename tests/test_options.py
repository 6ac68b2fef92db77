"""@app.function(...) checks its arguments when it decorates, and the public surface
``import skiff as modal`` relies on."""

from __future__ import annotations

import pytest

import skiff
import skiff as modal
from skiff import Retries
from skiff._options import build_options
from skiff.exception import InvalidError, NotSupportedError

app = skiff.App("options-tests")


def decorate(**kwargs):
    def f(x):
        return x

    f.__name__ = f"f_{len(app.registered_functions)}"
    return app.function(**kwargs)(f)


def test_defaults():
    opts = decorate().options
    assert (opts.timeout, opts.retries, opts.min_containers, opts.max_containers) == (300.0, None, 0, None)
    assert (opts.buffer_containers, opts.scaledown_window, opts.env, opts.max_inputs) == (0, 60.0, {}, None)


def test_valid_values_are_kept():
    opts = decorate(timeout=5, retries=2, min_containers=1, max_containers=3, buffer_containers=2,
                    scaledown_window=1.5, env={"A": "b"}, max_inputs=7).options
    assert opts.timeout == 5.0 and opts.retries == Retries(max_retries=2)
    assert (opts.min_containers, opts.max_containers, opts.buffer_containers) == (1, 3, 2)
    assert (opts.scaledown_window, opts.env, opts.max_inputs) == (1.5, {"A": "b"}, 7)


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="timout"):
        app.function(timout=5)  # type: ignore[call-arg]


def test_missing_parentheses():
    with pytest.raises(InvalidError, match="parentheses"):
        app.function(lambda: None)


@pytest.mark.parametrize("bad", ["3", 1.5, True, [1]])
def test_wrong_retries_type(bad):
    with pytest.raises(InvalidError, match="retries="):
        app.function(retries=bad)


@pytest.mark.parametrize("bad", [0, -1, "10", True, float("nan"), 24 * 3600 + 1])
def test_bad_timeout(bad):
    with pytest.raises(InvalidError, match="timeout=") as info:
        app.function(timeout=bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"min_containers": -1}, "min_containers="),
        ({"max_containers": 0}, "max_containers="),
        ({"buffer_containers": "1"}, "buffer_containers="),
        ({"max_inputs": 0}, "max_inputs="),
        ({"scaledown_window": 0}, "scaledown_window="),
        ({"env": {"A": 1}}, "env="),
        ({"name": "not an identifier"}, "name="),
    ],
)
def test_bad_values_name_the_argument(kwargs, named):
    with pytest.raises(InvalidError, match=named):
        app.function(**kwargs)


def test_min_above_max_containers():
    with pytest.raises(InvalidError, match="min_containers=3 is more than max_containers=2"):
        app.function(min_containers=3, max_containers=2)
    decorate(min_containers=2, max_containers=2)


def test_gpu_specs_are_accepted():
    assert build_options({"gpu": "A100"}).gpu == "A100"
    assert build_options({"gpu": ["H100:2", "A100-80GB", "any"]}).gpu == "H100:2"
    with pytest.raises(InvalidError, match="H100:9"):  # the placement's grammar: 1 to 8 GPUs
        build_options({"gpu": "H100:9"})


def test_malformed_gpu_is_invalid_not_unsupported():
    with pytest.raises(InvalidError, match="gpu=") as info:
        app.function(gpu="not a gpu!!")
    assert not isinstance(info.value, NotSupportedError)
    assert "'not a gpu!!'" in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"ephemeral_disk": 1024}, {"cloud": "aws"}, {"region": "eu"}]
)
def test_other_not_yet_arguments(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(NotSupportedError, match=f"{name}= is not supported yet"):
        app.function(**kwargs)


@pytest.mark.parametrize("kwargs", [{"ephemeral_disk": -1}, {"secrets": "s"}, {"volumes": ["/v"]},
                                    {"volumes": {"/root": None}}, {"volumes": {"relative": object()}},
                                    {"schedule": "*/5 * * * *"}])
def test_arguments_are_validated(kwargs):
    with pytest.raises(InvalidError, match=f"{next(iter(kwargs))}=") as info:
        app.function(**kwargs)
    assert not isinstance(info.value, NotSupportedError)


@pytest.mark.parametrize(
    ("old", "new", "value", "expected"),
    [
        ("concurrency_limit", "max_containers", 5, 5),
        ("keep_warm", "min_containers", 2, 2),
        ("container_idle_timeout", "scaledown_window", 30, 30.0),
    ],
)
def test_deprecated_aliases(old, new, value, expected):
    with pytest.warns(DeprecationWarning, match=f"{old}= is deprecated; use {new}="):
        fn = decorate(**{old: value})
    assert getattr(fn.options, new) == expected


def test_deprecated_alias_and_new_name_together():
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidError, match="not both"):
        app.function(keep_warm=1, min_containers=1)


def test_deprecated_alias_is_validated_like_its_new_name():
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidError, match="max_containers="):
        app.function(concurrency_limit=0)


def test_deprecation_warning_points_at_the_decorator():
    with pytest.warns(DeprecationWarning) as record:
        app.function(keep_warm=1)
    assert record[0].filename == __file__


def test_allow_concurrent_inputs_not_supported():
    with pytest.raises(NotSupportedError, match="allow_concurrent_inputs="):
        app.function(allow_concurrent_inputs=4)


def test_decorating_a_name_twice():
    def twice(x):
        return x

    local = skiff.App("twice")
    local.function()(twice)
    with pytest.raises(InvalidError, match="already has a function named 'twice'"):
        local.function()(twice)


def test_modal_names():
    assert modal.App is skiff.App and isinstance(modal.App("m"), modal.App)
    assert modal.Function is skiff.functions.Function
    assert modal.FunctionCall is skiff.functions.FunctionCall
    assert modal.Retries is Retries
    assert issubclass(modal.exception.FunctionTimeoutError, modal.exception.TimeoutError)
    assert issubclass(modal.exception.NotFoundError, modal.exception.Error)


def test_exported_members():
    for name in skiff.__all__:
        assert hasattr(skiff, name), name
    for name in skiff.exception.__all__:
        assert hasattr(skiff.exception, name), name
