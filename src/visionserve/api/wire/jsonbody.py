"""Reading untrusted JSON bodies: every way :func:`json.loads` can refuse a document is a 422.

``json.loads`` raises more than :class:`json.JSONDecodeError`: ``RecursionError`` for arrays nested a
few thousand levels deep, ``ValueError`` for integer literals longer than Python's digit limit
(4,300 digits), ``UnicodeDecodeError`` for bytes that are not UTF-8. Parsing a large body takes
long enough to stall the event loop, so routes call :func:`parse_json` in a worker thread.
"""

from __future__ import annotations

import json
from typing import Any

from visionserve.errors import InvalidParameterError


def parse_json(body: bytes | str, prefix: str = "invalid JSON body") -> Any:
    """The document in ``body``; :class:`InvalidParameterError` (its message starts with ``prefix``)
    when it is not JSON that Python can hold (invalid syntax or encoding, nesting too deep, a number
    too long)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise InvalidParameterError(f"{prefix}: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and over-long integers
        raise InvalidParameterError(f"{prefix}: {_short(str(exc))}") from None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
