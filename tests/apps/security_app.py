"""Functions for the credential tests: a victim that holds a secret and a volume, and an
attacker that tries, from inside its own container and with its own token, to reach
them and the server's other data."""

import json
import os
from pathlib import Path

import skiff

app = skiff.App("security-tests")

victim_vol = skiff.Volume.from_name("victim-volume", create_if_missing=True)
victim_secret = skiff.Secret.from_name("victim-secret", required_keys=["VICTIM_KEY"])


@app.function(secrets=[victim_secret], volumes={"/data": victim_vol}, scaledown_window=120)
def victim() -> dict:
    """Writes its volume, and says which container it is (it stays warm)."""
    Path("/data/private.txt").write_text("the victim's data")
    victim_vol.commit()
    return {"function_id": os.environ["SKIFF_FUNCTION_ID"], "container_id": os.environ["SKIFF_CONTAINER_ID"],
            "has_secret": bool(os.environ.get("VICTIM_KEY"))}


@app.function()
def attacker(targets: dict) -> dict:
    """Each attack a probe of a running server did with the token it found in its
    container, sent the same way: plain HTTP on the API socket. Returns the statuses."""
    from skiff.protocol.http import BlockingHTTP

    http = BlockingHTTP(os.environ["SKIFF_SERVER_URL"], os.environ["SKIFF_TOKEN"])
    fid, cid, app_id = targets["function_id"], targets["container_id"], targets["other_app_id"]
    call = targets["caller_call_id"]  # a call the owner's client made
    hijack = json.dumps({"function_id": fid, "kind": "spawn", "call_id": call, "inputs_complete": True,
                         "inputs": [{"idx": 99, "args": {"data": "gAROLg=="}}]}).encode()
    attacks = {
        "logs of another app (where ids were harvested)": ("GET", f"/v1/apps/{app_id}/logs?after=0&timeout=0"),
        "another container's hello (its secret values)": ("GET", f"/v1/functions/{fid}/containers/{cid}/hello"),
        "another app's volume file": ("GET", "/v1/volumes/victim-volume/file?path=private.txt"),
        "another volume's listing": ("GET", "/v1/volumes/victim-volume/ls?path=&recursive=true"),
        "list secrets": ("GET", "/v1/secrets"),
        "mint a proxy token": ("POST", "/v1/proxy-tokens"),
        "delete a secret": ("DELETE", "/v1/secrets/victim-secret"),
        "stop another app": ("POST", f"/v1/apps/{app_id}/stop"),
        "list apps": ("GET", "/v1/apps"),
        "usage": ("GET", "/v1/usage"),
        "read another's call": ("GET", f"/v1/calls/{call}/outputs?after=0&timeout=0"),
        "add inputs to another's call": ("POST", f"/v1/calls/{call}/inputs"),
        "cancel another's call": ("POST", f"/v1/calls/{call}/cancel"),
    }
    results = {}
    for name, (method, url) in attacks.items():
        body = b'{"inputs": [], "inputs_complete": true}' if url.endswith("/inputs") else b"{}" if method == "POST" else None
        status, _ctype, answer = http.send(method, url, body, attempts=1)
        results[name] = {"status": status, "body": answer.decode(errors="replace")[:300]}
    # Making a call under another's id, with inputs and "complete", is refused too.
    status, _ctype, answer = http.send("POST", "/v1/calls", hijack, attempts=1)
    results["make a call under another's id"] = {"status": status, "body": answer.decode(errors="replace")[:300]}
    # What a container may still do: its own Dicts, by name.
    d = skiff.Dict.from_name("attacker-scratch", create_if_missing=True)
    d["k"] = "v"
    results["own dict"] = {"status": 200 if d["k"] == "v" else 500, "body": ""}
    results["token kind"] = {"status": 0, "body": os.environ["SKIFF_TOKEN"][:5]}
    return json.loads(json.dumps(results))


@app.function()
def leak_token() -> str:
    return os.environ["SKIFF_TOKEN"]


@app.function(scaledown_window=60)
def reach_host(port: int) -> dict:
    """Tries the host through slirp4netns's alias for it (10.0.2.2), which leads to the
    host's loopback, where the test listens."""
    import socket

    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("10.0.2.2", port))
        outcome = "connected"
    except OSError as exc:
        outcome = type(exc).__name__
    finally:
        s.close()
    return {"outcome": outcome, "container_id": os.environ["SKIFF_CONTAINER_ID"]}
