"""The SDK's HTTP client: one ``httpx.AsyncClient`` per process, on the SDK's loop.

It turns the server's error bodies back into skiff exceptions, and a refused connection
into an error that says how to start a server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from . import config
from ._wire import API_PREFIX
from .exception import AuthError, ConnectionError, Error, error_from_code

_client: Client | None = None


class Client:
    def __init__(self, server_url: str, token: str | None) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.server_url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(90.0, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                      content: Any = None, timeout: float | None = None) -> Any:
        kwargs: dict[str, Any] = {"json": json, "params": params}
        if content is not None:
            kwargs = {"content": content, "params": params}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            resp = await self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ConnectionError(_unreachable(self.server_url)) from exc
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            raise ConnectionError(f"the connection to the skiff server at {self.server_url} broke: {exc!r}") from exc
        except httpx.TimeoutException as exc:
            raise ConnectionError(f"the skiff server at {self.server_url} did not answer in time ({exc!r})") from exc
        if resp.status_code >= 400:
            raise _error_from_response(resp)
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.content

    async def get_bytes(self, path: str) -> bytes:
        return await self.request("GET", path)

    async def close(self) -> None:
        await self._http.aclose()


def _unreachable(url: str) -> str:
    return (
        f"cannot reach the skiff server at {url}. Start one with `skiff server start` "
        "(or unset SKIFF_SERVER_URL to let `skiff run` start a local server for you)."
    )


def _error_from_response(resp: httpx.Response) -> Error:
    try:
        body = resp.json()
        code, message = body.get("code", "internal"), body.get("message", resp.text)
    except ValueError:
        code, message = "internal", f"HTTP {resp.status_code}: {resp.text[:500]}"
    if resp.status_code == 401:
        return AuthError(message)
    return error_from_code(code, message)


async def get_client() -> Client:
    """The process's client, starting a local server first if that is the embedded default."""
    global _client
    if _client is None:
        url = config.server_url()
        token = config.read_token()
        if config.is_default_server() and config.autostart_enabled():
            from . import _local_server

            await asyncio.to_thread(_local_server.ensure_running)
            token = config.read_token()
        _client = Client(url, token)
    return _client


async def reset_client() -> None:
    """Forget the cached client (tests point a process at several servers in turn)."""
    global _client
    if _client is not None:
        await _client.close()
        _client = None
