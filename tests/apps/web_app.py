"""A deployed app with web endpoints and a schedule, for the deploy/serve tests."""

import os
import time

import skiff

app = skiff.App("webtest")
image = skiff.Image.debian_slim().pip_install("fastapi")

VERSION = os.environ.get("WEB_APP_VERSION", "v1")  # read when deploying; baked into the function below


@app.function(image=image, scaledown_window=2, env={"WEB_APP_VERSION": VERSION})
@skiff.fastapi_endpoint(method="POST")
def generate(request: dict) -> dict:
    return {"response": request["prompt"][::-1], "version": os.environ["WEB_APP_VERSION"]}


@app.function(image=image)
@skiff.asgi_app(label="streamer")
def streamer():
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import StreamingResponse

    web = FastAPI()

    @web.get("/count/{n}")
    def count(n: int):
        def chunks():
            for i in range(n):
                yield f"{i}\n"
                time.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    @web.websocket("/ws")
    async def echo(ws: WebSocket):
        await ws.accept()
        while True:
            text = await ws.receive_text()
            if text == "bye":
                await ws.close()
                return
            await ws.send_text(f"echo: {text}")

    return web


@app.function()
@skiff.wsgi_app()
def classic():
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"wsgi {environ['PATH_INFO']} {environ['QUERY_STRING']}".encode()]

    return application


@app.function(image=image)
@skiff.fastapi_endpoint(requires_proxy_auth=True)
def private() -> dict:
    return {"secret": "data"}


@app.function(schedule=skiff.Period(seconds=2))
def tick() -> None:
    print("tick", time.time())


@app.function()
def plain(x: int) -> int:
    return x + 1


@app.cls()
class Counter:
    start: int = skiff.parameter(default=0)

    @skiff.method()
    def add(self, n: int) -> int:
        return self.start + n


@app.function(image=image, env={"WEB_APP_VERSION": VERSION})
@skiff.fastapi_endpoint()
def slow_page(seconds: float = 3.0) -> dict:
    time.sleep(seconds)
    return {"waited": seconds, "version": os.environ["WEB_APP_VERSION"]}
