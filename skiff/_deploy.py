"""``skiff deploy``: register every function of an app as a new version, then make it live."""

from __future__ import annotations

from typing import Any

from ._client import get_client
from ._runner import function_spec
from .app import App
from .cls import Cls
from .functions import Function
from .protocol import payload as wire_payload
from .protocol.wire import AppCreate, AppDeploy, FunctionCreate, encode


async def deploy_app(app: App, name: str | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Deploy ``app`` (under ``name``, default the app's own); returns the live AppInfo, as JSON."""
    client = await get_client()
    app_name = name or app.name
    if not app_name:
        from .exception import InvalidError

        raise InvalidError("a deployed app needs a name: skiff.App('my-app') or `skiff deploy --name my-app`")
    info = await client.request("POST", "/apps", json=encode(AppCreate(name=app_name, kind="deployed")))
    app_id, version = info["app_id"], info["version"]
    targets: list[Function | Cls] = [*app.registered_functions.values(), *app.registered_classes.values()]
    for target in targets:
        spec = await function_spec(client, target, app_id, show_progress=show_progress)
        if isinstance(target, Cls):
            if target.parameters:
                spec.is_template = True  # each parameter set gets its own function when first called
            else:
                spec.class_params = wire_payload.inline({})
        await client.request("POST", "/functions", json=encode(FunctionCreate(app_id=app_id, spec=spec, version=version)))
    live: dict[str, Any] = await client.request("POST", f"/apps/{app_id}/deploy", json=encode(AppDeploy(version=version)))
    return live
