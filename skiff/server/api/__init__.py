"""The HTTP API: one router per noun, each a thin layer over :class:`ControlPlane`."""

from .apps import router as apps_router
from .blobs import router as blobs_router
from .calls import router as calls_router
from .containers import router as containers_router
from .images import router as images_router
from .storage import router as storage_router
from .tokens import router as tokens_router
from .usage import router as usage_router

routers = [apps_router, blobs_router, calls_router, containers_router, images_router, storage_router, tokens_router,
           usage_router]

__all__ = ["routers"]
