"""Where containers run: the placement seam.

The function runner asks a :class:`Placement` for a :class:`Lease` (a slot and the GPUs
a container needs), starts the container on it, and gives the lease back when the
container has exited. Nothing else in the server starts, signals or waits on a
container. ``local`` (this machine) is in :mod:`.local`.
"""

from .base import Lease, Placement, Reclaimable
from .local import LocalPlacement

__all__ = ["Lease", "LocalPlacement", "Placement", "Reclaimable"]
