"""skiff: serverless Python on your own machines.

```python
import skiff

app = skiff.App("hello")

@app.function()
def square(x: int) -> int:
    return x * x

with app.run():
    print(square.remote(7))
```
"""

from . import exception
from ._partial import (
    asgi_app,
    batched,
    concurrent,
    enter,
    exit,
    fastapi_endpoint,
    method,
    web_endpoint,
    web_server,
    wsgi_app,
)
from .app import App, LocalEntrypoint
from .cls import Cls, Obj, parameter
from .dict import Dict
from .functions import Function, FunctionCall
from .image import Image
from .protocol import VERSION as __version__
from .queue import Queue
from .retries import Retries
from .schedule import Cron, Period
from .secret import Secret
from .volume import Volume

__all__ = [
    "App",
    "Cls",
    "Cron",
    "Dict",
    "Function",
    "FunctionCall",
    "Image",
    "LocalEntrypoint",
    "Obj",
    "Period",
    "Queue",
    "Retries",
    "Secret",
    "Volume",
    "__version__",
    "asgi_app",
    "batched",
    "concurrent",
    "enter",
    "exception",
    "exit",
    "fastapi_endpoint",
    "method",
    "parameter",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]
