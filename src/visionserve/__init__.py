"""visionserve: a self-hosted server for trained vision models.

The core (``core``, ``models``, ``backends``, ``decoders``, ``render``) turns images into
:class:`~visionserve.core.detections.Detections`; the interfaces (CLI, HTTP API, jobs, streams)
stand on it and the core knows nothing of them.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visionserve.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    """``visionserve.Client`` and ``visionserve.AsyncClient``, imported on first use so that
    ``import visionserve`` stays light."""
    if name in {"Client", "AsyncClient"}:
        from visionserve import client

        return getattr(client, name)
    raise AttributeError(f"module 'visionserve' has no attribute {name!r}")
