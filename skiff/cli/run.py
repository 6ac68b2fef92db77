"""``skiff run FILE[::NAME]``: run an app's local entrypoint, or call one function."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import click

from .._sync import run_sync
from ..app import App, LocalEntrypoint
from ..exception import AuthError, ConnectionError, ImageBuildError, InvalidError, NotFoundError
from ..functions import Function


def import_file(path: str) -> Any:
    """Import a user's file as a module named after it, as the container will."""
    file = Path(path)
    if not file.exists():
        raise click.UsageError(f"{path}: no such file")
    if file.suffix != ".py":
        raise click.UsageError(f"{path}: skiff run takes a Python file (.py)")
    file = file.resolve()
    sys.path.insert(0, str(file.parent))
    name = file.stem
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_app(module: Any) -> App:
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if len(apps) != 1:
        raise click.UsageError(f"{module.__file__} must define exactly one skiff.App; it defines {len(apps)}")
    return apps[0]


def find_target(module: Any, name: str | None) -> tuple[App, Function | LocalEntrypoint]:
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if not apps:
        raise click.UsageError(f"{module.__file__} defines no skiff.App")
    choices: dict[str, tuple[App, Function | LocalEntrypoint]] = {}
    for app in apps:
        for key, fn in app.registered_functions.items():
            choices[key] = (app, fn)
        for key, entry in app.registered_entrypoints.items():
            choices[key] = (app, entry)
    listing = ", ".join(sorted(choices)) or "none"
    if name is not None:
        if name not in choices:
            raise click.UsageError(f"{module.__file__} has no function or entrypoint {name!r}; it has: {listing}")
        return choices[name]
    entrypoints = [(a, e) for a in apps for e in a.registered_entrypoints.values()]
    if len(entrypoints) == 1:
        return entrypoints[0]
    functions = [(a, f) for a in apps for f in a.registered_functions.values()]
    if not entrypoints and len(functions) == 1:
        return functions[0]
    raise click.UsageError(f"say which one to run, as FILE::NAME; the choices are: {listing}")


_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING, bool: click.BOOL}


def signature_command(name: str, fn: Any, callback: Any) -> click.Command:
    """A click command whose options are ``fn``'s parameters (``--n 1000``)."""
    params: list[click.Parameter] = []
    hints = inspect.signature(fn).parameters
    for p in hints.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = p.annotation if p.annotation is not p.empty else str
        if isinstance(annotation, str):
            annotation = {"int": int, "float": float, "str": str, "bool": bool}.get(annotation, str)
        flag = "--" + p.name.replace("_", "-")
        if annotation is bool:
            params.append(click.Option([f"{flag}/--no-{p.name.replace('_', '-')}", p.name],
                                       default=False if p.default is p.empty else p.default))
        else:
            extra = {"required": True} if p.default is p.empty else {"default": p.default, "show_default": True}
            params.append(click.Option([flag, p.name], type=_TYPES.get(annotation, click.STRING), **extra))
    return click.Command(name, params=params, callback=callback, help=inspect.getdoc(fn))


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                        "help_option_names": ["-h", "--help"]})
@click.argument("func_ref", metavar="FILE[::NAME]")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the containers' output.")
@click.option("--no-progress", is_flag=True, help="Do not draw progress bars for long maps.")
@click.pass_context
def run_command(ctx: click.Context, func_ref: str, quiet: bool, no_progress: bool) -> None:
    """Run an app until its entrypoint returns.

    FILE is a Python file defining a skiff.App. NAME picks a @app.local_entrypoint()
    or an @app.function() when there is more than one; a function is called with
    .remote() and its result printed. Options after FILE are the target's parameters:

    \b
      skiff run hello.py --n 1000
      skiff run hello.py::square --x 3
    """
    path, _, name = func_ref.partition("::")
    module = import_file(path)
    app, target = find_target(module, name or None)

    def invoke(**kwargs: Any) -> None:
        try:
            with app.run(show_logs=not quiet, show_progress=not no_progress):
                if isinstance(target, Function):
                    result = target.remote(**kwargs)
                    if result is not None:
                        click.echo(result)
                else:
                    result = target(**kwargs)
                    if inspect.iscoroutine(result):
                        # An `async def` entrypoint runs to its end on skiff's own event loop,
                        # where its `.aio` calls share the SDK's client.
                        run_sync(result)
        except (AuthError, ConnectionError, ImageBuildError, InvalidError, NotFoundError) as exc:
            # The platform's own errors read best as one message; the user's remote
            # exceptions keep their tracebacks.
            raise click.ClickException(str(exc)) from None

    raw = target.get_raw_f() if isinstance(target, Function) else target.raw_f
    cmd = signature_command(f"{Path(path).name}::{getattr(target, '__name__', name)}", raw, invoke)
    cmd.main(args=ctx.args, prog_name=f"skiff run {func_ref}", standalone_mode=False)
