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

__version__ = "0.1.0"

from . import exception
from ._partial import batched, concurrent, enter, exit, method
from .app import App, LocalEntrypoint
from .cls import Cls, Obj, parameter
from .dict import Dict
from .functions import Function, FunctionCall
from .image import Image
from .queue import Queue
from .retries import Retries
from .secret import Secret
from .volume import Volume

__all__ = [
    "App",
    "Cls",
    "Dict",
    "Function",
    "FunctionCall",
    "Image",
    "LocalEntrypoint",
    "Obj",
    "Queue",
    "Retries",
    "Secret",
    "Volume",
    "__version__",
    "batched",
    "concurrent",
    "enter",
    "exception",
    "exit",
    "method",
    "parameter",
]
