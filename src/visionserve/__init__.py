"""visionserve: a self-hosted server for trained vision models.

The core (``core``, ``models``, ``backends``, ``decoders``, ``render``) turns images into
:class:`~visionserve.core.detections.Detections`; the interfaces (CLI, HTTP API, jobs, streams)
stand on it and the core knows nothing of them.
"""

__version__ = "0.1.0"
