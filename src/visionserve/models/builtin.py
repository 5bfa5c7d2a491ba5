"""The built-in models: specs that every repository holds, with no folder or download.

The first is the default model (what ``POST /v1/detect`` and ``visionserve detect`` use without a
model name). Built-ins other than the default load on their first request unless the ``preload``
setting names them (see :mod:`visionserve.models.preload`), so a server that only detects does not
pay for them.
"""

from __future__ import annotations

from visionserve.models.default import default_spec
from visionserve.models.spec import ModelSpec


def builtin_specs() -> list[ModelSpec]:
    """The built-in specs, the default model first. Raises
    :class:`~visionserve.errors.MissingDependencyError` when the package holding their files is
    not installed."""
    return [default_spec()]
