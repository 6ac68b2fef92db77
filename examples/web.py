"""Web endpoints and a schedule: deploy with `skiff deploy examples/web.py`, then

    curl -X POST localhost:7171/web-example/generate -H 'content-type: application/json' -d '{"prompt": "hello"}'
    curl localhost:7171/web-example/chat/stream/3

Containers start on the first request and stop when idle (`skiff app list` shows them).
"""

import time

import skiff

app = skiff.App("web-example")
image = skiff.Image.debian_slim().pip_install("fastapi")


@app.function(image=image, scaledown_window=30)
@skiff.fastapi_endpoint(method="POST")
def generate(request: dict) -> dict:
    """One JSON request in, one JSON answer out."""
    return {"response": request["prompt"][::-1]}


@app.function(image=image)
@skiff.concurrent(max_inputs=32)
@skiff.asgi_app(label="chat")
def chat():
    """A whole FastAPI app: a streamed response, and a websocket at /chat/ws."""
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import StreamingResponse

    web = FastAPI()

    @web.get("/stream/{n}")
    def stream(n: int):
        def lines():
            for i in range(n):
                yield f"line {i}\n"
                time.sleep(0.1)

        return StreamingResponse(lines(), media_type="text/plain")

    @web.websocket("/ws")
    async def echo(ws: WebSocket):
        await ws.accept()
        while (text := await ws.receive_text()) != "bye":
            await ws.send_text(f"echo: {text}")
        await ws.close()

    return web


@app.function(schedule=skiff.Period(minutes=5))
def heartbeat() -> None:
    print("still here at", time.strftime("%H:%M:%S"))
