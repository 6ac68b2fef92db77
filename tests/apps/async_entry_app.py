"""An app whose local entrypoint is ``async def``, calling functions with ``.aio``."""

import skiff

app = skiff.App("async-entry")


@app.function()
def square(x: int) -> int:
    return x * x


@app.local_entrypoint()
async def main(n: int = 4):
    total = 0
    async for value in square.map.aio(range(n)):
        total += value
    print("remote", await square.remote.aio(7), "sum", total)
