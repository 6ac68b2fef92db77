"""Web endpoints for the gateway's edge cases: scaling on requests in flight, a request
past its timeout, a container dying mid-request, an app error, and a web_server."""

import os
import subprocess
import time

import skiff

app = skiff.App("webedge")
image = skiff.Image.debian_slim().pip_install("fastapi")


@app.function(image=image, max_containers=3, scaledown_window=2)
@skiff.fastapi_endpoint()
def slow(seconds: float = 2.0) -> dict:
    time.sleep(seconds)
    return {"container": os.environ["SKIFF_CONTAINER_ID"]}


@app.function(image=image, timeout=2)
@skiff.fastapi_endpoint()
def overtime() -> dict:
    time.sleep(30)
    return {}


@app.function(image=image)
@skiff.fastapi_endpoint()
def crash() -> dict:
    os._exit(3)


@app.function(image=image)
@skiff.fastapi_endpoint()
def broken() -> dict:
    raise ValueError("boom")


@app.function()
@skiff.web_server(8000, startup_timeout=20)
def files() -> None:
    os.makedirs("/tmp/site", exist_ok=True)
    with open("/tmp/site/hello.txt", "w") as f:
        f.write("served by http.server\n")
    subprocess.Popen(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/tmp/site"])


@app.function(image=image)
@skiff.asgi_app()
def breaking():
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    web = FastAPI()

    @web.get("/")
    def stream():
        def chunks():
            yield "first part\n"
            time.sleep(0.2)
            os._exit(3)  # the container dies mid-response

        return StreamingResponse(chunks(), media_type="text/plain")

    return web
