"""The smallest skiff app: run it with `skiff run examples/hello.py --n 1000`."""

import skiff

app = skiff.App("hello")


@app.function(timeout=60, retries=2)
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


@app.local_entrypoint()
def main(n: int = 10):
    print(square.remote(7))  # 49, computed in another process
    print(sum(square.map(range(n))))  # fan-out
    call = square.spawn(9)
    print(call.get())  # fire now, collect later
