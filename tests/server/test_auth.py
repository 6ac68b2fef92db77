"""Credentials and the route policy for container tokens, with no server running."""

from __future__ import annotations

import pytest

from skiff.exception import AuthError, PermissionDeniedError
from skiff.protocol.wire import FunctionSpec, VolumeRef
from skiff.server.api import routers
from skiff.server.auth import CONTAINER_ROUTES, Credentials, authorize

ADMIN_TOKEN = "admin-token-for-tests"


def api_routes() -> set[tuple[str, str]]:
    return {(method, route.path) for router in routers for route in router.routes for method in route.methods}


def test_the_policy_names_only_routes_that_exist():
    """A typo in the policy would silently close a route containers need."""
    assert set(CONTAINER_ROUTES) - api_routes() == set()


def test_routes_left_to_the_admin_are_the_ones_that_manage_the_server():
    admin_only = {path for method, path in api_routes() - set(CONTAINER_ROUTES)}
    for must in ("/v1/secrets", "/v1/secrets/{name}", "/v1/proxy-tokens", "/v1/apps/{app_id}/stop",
                 "/v1/apps/{app_id}/logs", "/v1/apps", "/v1/usage", "/v1/volumes", "/v1/dicts",
                 "/v1/volumes/{name}", "/v1/functions", "/v1/apps/{app_id}/deploy", "/v1/images"):
        assert must in admin_only, must


def test_tokens_are_kept_as_digests_and_die_with_their_container():
    creds = Credentials(ADMIN_TOKEN)
    spec = FunctionSpec(name="f", volumes=[VolumeRef(name="vol", mount_path="/v")])
    token = creds.mint("fu-1", "ta-1", "ap-1", spec)
    assert token.startswith("sk-c-")
    assert token not in repr(creds.__dict__)  # only its sha256 is kept
    who = creds.verify(f"Bearer {token}")
    assert (who.kind, who.function_id, who.container_id, who.volumes) == ("container", "fu-1", "ta-1", {"vol"})
    assert creds.verify(f"Bearer {ADMIN_TOKEN}").is_admin
    creds.revoke("ta-1")
    with pytest.raises(AuthError):
        creds.verify(f"Bearer {token}")
    for bad in ("", "Bearer", f"Basic {ADMIN_TOKEN}", "Bearer nope"):
        with pytest.raises(AuthError):
            creds.verify(bad)


def test_a_container_reaches_its_own_work_and_nothing_else():
    creds = Credentials(ADMIN_TOKEN)
    spec = FunctionSpec(name="f", volumes=[VolumeRef(name="mine", mount_path="/v")])
    me = creds.verify("Bearer " + creds.mint("fu-1", "ta-1", "ap-1", spec))
    owners = {"fc-mine": "ta-1", "fc-admin": ""}

    def allowed(method: str, path: str, **params: str) -> bool:
        try:
            authorize(me, method, path, params, owners.get)
            return True
        except PermissionDeniedError:
            return False

    own = "/v1/functions/{function_id}/containers/{container_id}/hello"
    assert allowed("GET", own, function_id="fu-1", container_id="ta-1")
    assert not allowed("GET", own, function_id="fu-1", container_id="ta-2")
    assert not allowed("GET", own, function_id="fu-2", container_id="ta-1")
    assert allowed("GET", "/v1/volumes/{name}/file", name="mine")
    assert not allowed("GET", "/v1/volumes/{name}/file", name="theirs")
    assert allowed("GET", "/v1/calls/{call_id}/outputs", call_id="fc-mine")
    assert not allowed("GET", "/v1/calls/{call_id}/outputs", call_id="fc-admin")
    assert not allowed("GET", "/v1/calls/{call_id}/outputs", call_id="fc-unknown")
    assert allowed("POST", "/v1/calls")
    assert allowed("POST", "/v1/dicts/{name}/put", name="any-dict")
    for method, path in [("GET", "/v1/secrets"), ("DELETE", "/v1/secrets/{name}"), ("POST", "/v1/proxy-tokens"),
                         ("POST", "/v1/apps/{app_id}/stop"), ("GET", "/v1/apps/{app_id}/logs"), ("GET", "/v1/usage")]:
        assert not allowed(method, path, name="x", app_id="ap-1"), (method, path)
