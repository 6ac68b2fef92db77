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
from .app import App, LocalEntrypoint
from .functions import Function, FunctionCall
from .image import Image
from .retries import Retries

__all__ = [
    "App",
    "Function",
    "FunctionCall",
    "Image",
    "LocalEntrypoint",
    "Retries",
    "__version__",
    "exception",
]
