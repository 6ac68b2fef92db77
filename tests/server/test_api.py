"""The HTTP API against the shared test server: auth, and 4xx (never 5xx) for bad requests."""

from __future__ import annotations

import hashlib

import httpx
import pytest

MISSING_SHA = "0" * 64


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token()}"},
                      timeout=10) as client:
        yield client


@pytest.fixture
def live_app(api):
    app = api.post("/v1/apps", json={"name": "api-tests"}).json()
    yield app
    api.post(f"/v1/apps/{app['app_id']}/stop")


def test_health_needs_no_token(server):
    resp = httpx.get(server.url + "/v1/health")
    assert resp.status_code == 200 and resp.json()["ok"] is True


def test_no_token_is_401_with_a_json_code(server):
    resp = httpx.get(server.url + "/v1/apps")
    assert resp.status_code == 401
    body = resp.json()
    assert body["code"] == "unauthenticated" and "token" in body["message"]


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic abc", "Bearer", "wrong"])
def test_wrong_token_is_401(server, header):
    resp = httpx.get(server.url + "/v1/apps", headers={"Authorization": header})
    assert resp.status_code == 401 and resp.json()["code"] == "unauthenticated"


def test_right_token_is_accepted(api):
    assert api.get("/v1/apps").status_code == 200


def test_unknown_app_says_how_to_list_apps(api):
    resp = api.get("/v1/apps/no-such-app")
    assert resp.status_code == 404
    assert resp.json()["code"] == "not_found" and "skiff app list" in resp.json()["message"]


def test_blob_with_wrong_content_is_rejected_and_not_stored(api):
    claimed = hashlib.sha256(b"what was promised").hexdigest()
    resp = api.put(f"/v1/blobs/{claimed}", content=b"something else")
    assert resp.status_code == 400 and resp.json()["code"] == "invalid"
    assert api.get(f"/v1/blobs/{claimed}").status_code == 404
    assert api.post("/v1/blobs/missing", json={"blob_ids": [claimed]}).json()["blob_ids"] == [claimed]


def test_blob_round_trip(api):
    data = b"blob round trip"
    sha = hashlib.sha256(data).hexdigest()
    assert api.put(f"/v1/blobs/{sha}", content=data).status_code == 200
    assert api.get(f"/v1/blobs/{sha}").content == data


def test_create_app_then_get_it(api, live_app):
    assert live_app["state"] == "ephemeral" and live_app["heartbeat_interval"] == pytest.approx(1.0)
    [info] = api.get(f"/v1/apps/{live_app['app_id']}").json()
    assert info["name"] == "api-tests" and info["containers"] == 0


def bad_requests(app_id: str) -> list[tuple[str, str, dict]]:
    fn_spec = {"name": "f", "module_name": "m", "qualname": "f"}
    return [
        ("POST", "/v1/apps", {"json": {}}),
        ("POST", "/v1/apps", {"json": {"name": 5}}),
        ("POST", "/v1/apps", {"json": {"name": ["a"]}}),
        ("POST", "/v1/apps", {"json": {"name": "x", "kind": "bogus"}}),
        ("POST", "/v1/apps", {"content": b"not json", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/apps", {"content": b"name=x"}),
        ("POST", "/v1/apps", {"json": [1, 2]}),
        ("GET", "/v1/apps/ap-nonexistent", {}),
        ("POST", "/v1/apps/ap-nonexistent/stop", {}),
        ("POST", "/v1/apps/ap-nonexistent/heartbeat", {}),
        ("GET", "/v1/apps/ap-nonexistent/logs", {}),
        ("GET", f"/v1/apps/{app_id}/logs", {"params": {"timeout": -1}}),
        ("GET", f"/v1/apps/{app_id}/logs", {"params": {"after": -1}}),
        ("GET", f"/v1/apps/{app_id}/logs", {"params": {"timeout": "soon"}}),
        ("GET", f"/v1/apps/{app_id}/logs", {"params": {"after": 2**63, "timeout": 0}}),
        ("POST", "/v1/functions", {"json": {"app_id": "ap-nonexistent", "spec": fn_spec}}),
        ("POST", "/v1/functions", {"json": {"app_id": app_id}}),
        ("POST", "/v1/functions", {"json": {"app_id": app_id, "spec": {"name": "nothing-to-run"}}}),
        ("POST", "/v1/functions", {"json": {"app_id": app_id, "spec": {**fn_spec, "timeout": "long"}}}),
        ("POST", "/v1/functions", {"json": {"app_id": app_id, "spec": {**fn_spec, "retries": {"bogus": 1}}}}),
        ("POST", "/v1/functions", {"json": {"app_id": app_id, "spec": {**fn_spec, "retries": {"max_retries": 99}}}}),
        ("POST", "/v1/calls", {"json": {"function_id": "fu-nonexistent"}}),
        ("POST", "/v1/calls", {"json": {"function_id": 1, "inputs": "x"}}),
        ("POST", "/v1/calls", {"json": {}}),
        ("POST", "/v1/calls/fc-nonexistent/inputs", {"json": {"inputs": []}}),
        ("POST", "/v1/calls/fc-nonexistent/cancel", {}),
        ("GET", "/v1/calls/nonexistent/outputs", {}),
        ("GET", "/v1/calls/nonexistent/outputs", {"params": {"timeout": -1}}),
        ("GET", "/v1/calls/nonexistent/outputs", {"params": {"timeout": 61}}),
        ("GET", "/v1/calls/nonexistent/outputs", {"params": {"limit": 0}}),
        ("PUT", "/v1/blobs/xyz", {"content": b"data"}),
        ("PUT", "/v1/blobs/" + "A" * 64, {"content": b"data"}),
        ("GET", "/v1/blobs/xyz", {}),
        ("GET", f"/v1/blobs/{MISSING_SHA}", {}),
        ("POST", "/v1/blobs/missing", {"json": {"blob_ids": ["../../etc/passwd"]}}),
        ("POST", "/v1/blobs/missing", {"json": {"blob_ids": "abc"}}),
        ("GET", "/v1/functions/fu-nonexistent/containers/ct-x/hello", {}),
        ("POST", "/v1/functions/fu-nonexistent/containers/ct-x/init_failure",
         {"json": {"input_id": "in-x", "status": "init_failure"}}),
    ]


def test_malformed_requests_get_4xx_never_5xx(server, api, live_app):
    wrong = []
    for method, path, kwargs in bad_requests(live_app["app_id"]):
        # a connection of its own each: the server drops a connection after a 500
        headers = {**api.headers, **kwargs.pop("headers", {})}
        resp = httpx.request(method, server.url + path, headers=headers, timeout=10, **kwargs)
        if not 400 <= resp.status_code < 500:
            wrong.append(f"{method} {path} {kwargs}: {resp.status_code} {resp.text[:200]}")
        elif resp.headers.get("content-type", "").startswith("application/json"):
            assert "code" in resp.json() or "detail" in resp.json(), (method, path)
    assert not wrong, "\n".join(wrong)


def test_specific_statuses(api):
    assert api.post("/v1/calls", json={"function_id": "fu-nonexistent"}).status_code == 404
    assert api.get("/v1/calls/nonexistent/outputs").status_code == 404
    assert api.put("/v1/blobs/xyz", content=b"x").status_code == 400
    assert api.post("/v1/functions", json={"app_id": "ap-nonexistent", "spec": {"name": "f", "module_name": "m"}}
                    ).status_code == 404
    assert api.post("/v1/apps", json={}).json()["code"] == "invalid"


def test_rejected_function_is_not_added_to_the_app(api, live_app):
    app_id = live_app["app_id"]
    spec = {"name": "rejected", "module_name": "m", "qualname": "f", "retries": {"max_retries": 99}}
    resp = api.post("/v1/functions", json={"app_id": app_id, "spec": spec})
    assert resp.status_code == 400
    [info] = api.get(f"/v1/apps/{app_id}").json()
    assert "rejected" not in info["functions"]


def test_server_validates_function_spec_like_the_decorator(api, live_app):
    accepted = []
    for bad in [{"timeout": -5}, {"timeout": 0}, {"max_containers": 0}, {"min_containers": -1},
                {"min_containers": 3, "max_containers": 1}, {"scaledown_window": -1}]:
        spec = {"name": "checked", "module_name": "m", "qualname": "f", **bad}
        resp = api.post("/v1/functions", json={"app_id": live_app["app_id"], "spec": spec})
        if resp.status_code != 400:
            accepted.append(f"{bad}: {resp.status_code}")
    assert not accepted, accepted


def test_writes_to_a_deleted_dict_or_queue_are_404_and_the_connection_stays_usable(api):
    for kind, write in (("dicts", {"items": [["a2V5", "dmFsdWU="]]}), ("queues", {"values": ["dmFsdWU="]})):
        assert api.post(f"/v1/{kind}/gone-{kind}", json={"create_if_missing": True}).status_code == 200
        assert api.delete(f"/v1/{kind}/gone-{kind}").status_code == 200
        resp = api.post(f"/v1/{kind}/gone-{kind}/put", json=write)
        assert resp.status_code == 404 and resp.json()["code"] == "not_found", resp.text
        assert api.get("/v1/apps").status_code == 200  # the same keep-alive connection, next request


def test_a_version_out_of_any_range_is_404_not_a_database_error(api):
    app = api.post("/v1/apps", json={"name": "huge-version", "kind": "deployed"}).json()
    for version in (2**63 + 5, 2**40, -1, 0):
        resp = api.post(f"/v1/apps/{app['app_id']}/deploy", json={"version": version})
        assert resp.status_code == 404, (version, resp.text)


def test_app_names_follow_the_object_name_rules(api):
    for bad in ("", "has space", "bell\x07", "x" * 200, "-leading-dash"):
        resp = api.post("/v1/apps", json={"name": bad})
        assert resp.status_code == 400 and "app name" in resp.json()["message"], (bad, resp.text)


def test_internal_secret_names_are_not_reachable(api):
    resp = api.post("/v1/secrets", json={"name": "__proxy-wk-forged", "values": {"SECRET": "x"}})
    assert resp.status_code == 400
    resp = api.delete("/v1/secrets/__proxy-wk-forged")
    assert resp.status_code == 400


def test_a_deleted_proxy_token_stops_working_at_once(api, server):
    app = api.post("/v1/apps", json={"name": "proxy-check"})
    assert app.status_code == 200
    token = api.post("/v1/proxy-tokens").json()
    assert token["key"] in [t["key"] for t in api.get("/v1/proxy-tokens").json()["tokens"]]
    assert api.delete(f"/v1/proxy-tokens/{token['key']}").status_code == 200
    assert token["key"] not in [t["key"] for t in api.get("/v1/proxy-tokens").json()["tokens"]]
    assert api.delete(f"/v1/proxy-tokens/{token['key']}").status_code == 404


def test_unknown_web_paths_do_not_list_endpoints_to_strangers(api, server):
    stranger = httpx.get(server.url + "/no-such-app/no-such-label")
    assert stranger.status_code == 404 and "endpoints here" not in stranger.text
    owner = api.get("/no-such-app/no-such-label")
    assert owner.status_code == 404 and "endpoints here" in owner.text


def test_the_openapi_schema_is_served_and_documents_error_codes(server):
    schema = httpx.get(server.url + "/openapi.json").json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) > 60
    for op in operations:
        if op.get("operationId", "").startswith("health"):
            continue
        assert {"401", "403", "404", "409", "422"} <= set(op["responses"]), op.get("operationId")
