"""What crosses a process boundary in skiff, and nothing else.

skiff runs as four kinds of process: the SDK and CLI in the user's process, the server
(control plane), the node side that runs containers (``skiff.worker``), and the runtime
inside each container (``skiff._container``). They share only this package:

| module | what it holds |
|---|---|
| :mod:`.wire` | every message of the HTTP API, as dataclasses |
| :mod:`.payload` | how pickled values travel: inline base64 or a blob id |
| :mod:`.serialization` | pickling of arguments, results and exceptions |
| :mod:`.errors` | the exception hierarchy and its wire codes |
| :mod:`.http` | a blocking HTTP client over TCP or a Unix socket |
| :mod:`.webproto` | the frames between the web gateway and a web container |
| :mod:`.volumes` | the volume transfer format: blocks, batches, the local channel |
| :mod:`.gpus` | GPU inventories and ``gpu=`` requests |
| :mod:`.images` | image step kinds and layer ids |
| :mod:`.names` | the rules for object names |
| :mod:`.config` | where state lives and how a client finds its server |

Standard library and cloudpickle only: the container imports it inside any image.
``tests/test_boundaries.py`` reads every module's imports and keeps the sides apart.
"""

VERSION = "0.1.0"  # skiff's version: the SDK's __version__ and what the server reports
