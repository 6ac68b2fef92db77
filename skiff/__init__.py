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
from .functions import Function, FunctionCall
from .image import Image
from .retries import Retries

__all__ = [
    "App",
    "Cls",
    "Function",
    "FunctionCall",
    "Image",
    "LocalEntrypoint",
    "Obj",
    "Retries",
    "__version__",
    "batched",
    "concurrent",
    "enter",
    "exception",
    "exit",
    "method",
    "parameter",
]
