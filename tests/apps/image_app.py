"""Functions the image tests run in containers (this module must import without pytest)."""

import os

import skiff

app = skiff.App("image-tests")


@app.function()
def peek(path: str) -> bool:
    return os.path.exists(path)


@app.function()
def network_probe(host_port: int) -> dict:
    """What the container's network reaches: the internet (over HTTPS), and the host's
    loopback services (it should not)."""
    import socket
    import urllib.request

    seen = {}
    try:
        with urllib.request.urlopen("https://pypi.org/simple/six/", timeout=20) as resp:
            seen["https"] = resp.status
    except Exception as exc:
        seen["https"] = repr(exc)
    for host in ("127.0.0.1", "10.0.2.2"):  # its own loopback, and slirp's route to the host's
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((host, host_port))
            seen[host] = "connected"
        except OSError as exc:
            seen[host] = type(exc).__name__
        finally:
            s.close()
    return seen


@app.function(image=skiff.Image.debian_slim(python_version="3.13").pip_install("six==1.16.0"))
def python_and_six() -> tuple:
    import sys

    import six

    return tuple(sys.version_info[:2]), six.__version__
