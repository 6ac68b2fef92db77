"""``@app.cls``: classes whose containers keep state between inputs.

```python
@app.cls(scaledown_window=120)
class Model:
    size: str = skiff.parameter(default="small")

    @skiff.enter()
    def load(self):
        self.weights = load(self.size)      # once per container

    @skiff.method()
    def predict(self, x):
        return self.weights(x)

    @skiff.exit()
    def close(self): ...

Model(size="large").predict.remote(3)    # containers for size="large"
```

Each distinct set of parameters gets containers of its own: the server sees it as one
function, created the first time it is called.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._options import FunctionOptions, build_options
from .exception import InvalidError
from .functions import Function
from .protocol import payload as wire_payload
from .protocol import serialization as ser
from .protocol.lifecycle import Parameter, class_parameters, instantiate, lifecycle_methods, marks
from .protocol.wire import FunctionCreated, VariantCreate, decode, encode

if TYPE_CHECKING:
    from .app import App

__all__ = ["Cls", "Obj", "parameter"]

_MISSING = object()


def parameter(*, default: Any = _MISSING, init: bool = True) -> Any:
    """A class parameter: ``Model(size="large")`` gets containers of its own.

    ```python
    size: str = skiff.parameter(default="small")
    ```
    """
    if not init:
        raise InvalidError("parameter(init=False) is not supported")
    return Parameter(default)


class MethodFunction(Function):
    """One method of one parameterized instance, with ``Function``'s calling API."""

    def __init__(self, obj: Obj, name: str) -> None:
        raw = getattr(obj.cls.get_user_cls(), name)
        super().__init__(raw, obj.cls.app, obj.cls.options)
        self.tag = f"{obj.cls.tag}.{name}"
        self._obj = obj
        self._method = name

    def local(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._obj._local_instance(), self._method)(*args, **kwargs)

    def _args_payload(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return ser.serialize_args(self.tag, args, kwargs, method=self._method)

    async def _resolve_id(self) -> str:
        return await self._obj._function_id()


class Obj:
    """An instance handle: ``Model(size="large")``. Its methods are called remotely."""

    def __init__(self, cls: Cls, params: dict[str, Any]) -> None:
        self.cls = cls
        self.params = params
        self._local: Any = None

    def __repr__(self) -> str:
        return f"<skiff.Obj {self.cls.tag}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})>"

    def __getattr__(self, name: str) -> MethodFunction:
        if name.startswith("_") or name not in self.cls.methods:
            raise AttributeError(
                f"{self.cls.tag} has no @skiff.method() named {name!r}; its methods are: "
                f"{', '.join(self.cls.methods) or 'none'}"
            )
        return MethodFunction(self, name)

    def _local_instance(self) -> Any:
        if self._local is None:
            self._local = instantiate(self.cls.get_user_cls(), self.params)
            for hook in lifecycle_methods(type(self._local), "enter"):
                getattr(self._local, hook)()
        return self._local

    async def _function_id(self) -> str:
        return await self.cls._variant_id(self.params)


class Cls:
    """What ``@app.cls()`` returns: call it with parameters to get an :class:`Obj`."""

    def __init__(self, user_cls: type, app: App, options: FunctionOptions) -> None:
        self._user_cls = user_cls
        self.app = app
        self.options = options
        self.tag = options.name or user_cls.__name__
        self.parameters = class_parameters(user_cls)
        self.methods = [n for n, v in inspect.getmembers(user_cls) if callable(v) and marks(v).get("method")]
        if not self.methods:
            raise InvalidError(f"@app.cls() class {user_cls.__name__} has no @skiff.method(); mark the methods to call")
        if self.parameters and "__init__" in vars(user_cls):
            raise InvalidError(f"{user_cls.__name__} uses skiff.parameter(), so it must not define __init__")
        self._variants: dict[bytes, str] = {}
        self._variants_for: str | None = None  # the app run those variants belong to
        self.__name__ = user_cls.__name__
        self.__qualname__ = user_cls.__qualname__
        self.__module__ = user_cls.__module__
        self.__doc__ = user_cls.__doc__

    def __repr__(self) -> str:
        return f"<skiff.Cls {self.tag}>"

    def get_user_cls(self) -> type:
        return self._user_cls

    def __call__(self, **params: Any) -> Obj:
        unknown = set(params) - set(self.parameters)
        if unknown:
            raise InvalidError(
                f"{self.tag}() got unknown parameter(s) {sorted(unknown)}; its parameters are "
                f"{sorted(self.parameters) or 'none'}"
            )
        missing = [n for n, p in self.parameters.items() if p.default is _MISSING and n not in params]
        if missing:
            raise InvalidError(f"{self.tag}() needs a value for parameter(s) {missing}")
        full = {n: params.get(n, p.default) for n, p in self.parameters.items()}
        return Obj(self, full)

    def __getattr__(self, name: str) -> Any:
        # `Model.predict.remote(x)` for a class without parameters.
        if name in self.__dict__.get("methods", ()):
            return getattr(self(), name)
        raise AttributeError(name)

    @staticmethod
    def from_name(app_name: str, name: str) -> _DeployedCls:
        """A deployed class, looked up on first use: ``Cls.from_name("app", "Model")(size="l")``."""
        return _DeployedCls(app_name, name)

    def with_options(self, **overrides: Any) -> Cls:
        """The same class with other resources or scaling: ``Model.with_options(gpu="A100")()``."""
        given = {k: v for k, v in vars(self.options).items() if v is not None}
        given.pop("retries", None)
        if self.options.retries is not None:
            given["retries"] = self.options.retries
        given.update(overrides)
        clone = Cls.__new__(Cls)
        clone.__dict__.update(self.__dict__)
        clone.options = replace(build_options(given))
        clone._variants = {}
        return clone

    async def _variant_id(self, params: dict[str, Any]) -> str:
        running = self.app._running
        if running is None:
            raise InvalidError(f"{self.tag} is not running: call it inside `with app.run():` or under `skiff run`")
        if self._variants_for != running.app_id:  # a new run of the app: new server functions
            self._variants, self._variants_for = {}, running.app_id
        key = ser.serialize(sorted(params.items()))
        if key not in self._variants:
            self._variants[key] = await running.register_class_variant(self, params)
        return self._variants[key]

    def _forget_variants(self) -> None:
        self._variants, self._variants_for = {}, None


class _DeployedCls:
    """A handle from :meth:`Cls.from_name`; call it with parameters for an instance."""

    def __init__(self, app_name: str, name: str) -> None:
        self.app_name, self.tag = app_name, name
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<skiff.Cls {self.app_name}/{self.tag}>"

    def __call__(self, **params: Any) -> _DeployedObj:
        return _DeployedObj(self, params)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self(), name)

    async def _function_id(self, params: dict[str, Any]) -> str:
        from ._client import get_client

        client = await get_client()
        if self._info is None:
            self._info = await client.request("GET", f"/deployed/{self.app_name}/functions/{self.tag}")
            if not self._info.get("is_class"):
                raise InvalidError(f"{self.tag} is a function: use skiff.Function.from_name({self.app_name!r}, {self.tag!r})")
        if not self._info.get("is_template"):
            function_id: str = self._info["function_id"]
            return function_id
        msg = VariantCreate(class_params=wire_payload.inline(params))
        found = await client.request("POST", f"/functions/{self._info['function_id']}/variants", json=encode(msg))
        return str(decode(FunctionCreated, found).function_id)


class _DeployedObj:
    def __init__(self, cls: _DeployedCls, params: dict[str, Any]) -> None:
        self.cls, self.params = cls, params
        self._id: str | None = None

    def __getattr__(self, name: str) -> Function:
        if name.startswith("_"):
            raise AttributeError(name)
        return _DeployedMethod(self, name)

    async def _function_id(self) -> str:
        if self._id is None:
            self._id = await self.cls._function_id(self.params)
        return self._id


class _DeployedMethod(Function):
    def __init__(self, obj: _DeployedObj, name: str) -> None:
        from .functions import _NO_APP

        def missing(*_a: Any, **_k: Any) -> Any:
            raise InvalidError(f"{obj.cls.tag}.{name} was looked up by name; it has no local code to run")

        super().__init__(missing, _NO_APP, FunctionOptions())
        self.tag, self._obj, self._method = f"{obj.cls.tag}.{name}", obj, name

    def _args_payload(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return ser.serialize_args(self.tag, args, kwargs, method=self._method)

    async def _resolve_id(self) -> str:
        return await self._obj._function_id()


def wrap_class(user_cls: type, app: App, options: FunctionOptions) -> Cls:
    if not inspect.isclass(user_cls):
        raise InvalidError(f"@app.cls() decorates a class, got {user_cls!r}")
    return Cls(user_cls, app, options)

