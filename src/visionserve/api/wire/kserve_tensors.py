"""Tensors of the KServe v2 / Open Inference Protocol, in JSON and in the binary tensor extension.

Binary tensor data is little-endian, row-major, without padding; a ``BYTES`` element is a 4-byte
little-endian unsigned length followed by that many bytes (Triton's ``serialize_byte_tensor``).
In JSON, tensor data is a flat or nested list in row-major order; a ``BYTES`` element is a UTF-8
string, or base64 text when the tensor's parameters say ``"content_type": "base64"`` (MLServer's
convention). ``BYTES`` tensors are numpy ``object`` arrays of ``bytes``.

Every malformed tensor raises :class:`InvalidParameterError` naming the tensor.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.errors import InvalidParameterError

_LENGTH = struct.Struct("<I")
_END = object()


class Datatype(StrEnum):
    """The tensor element types of the protocol."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


#: Little-endian numpy dtypes of the fixed-size datatypes (``BYTES`` has none).
NUMPY_DTYPES: dict[Datatype, np.dtype[Any]] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype("<u1"),
    Datatype.UINT16: np.dtype("<u2"),
    Datatype.UINT32: np.dtype("<u4"),
    Datatype.UINT64: np.dtype("<u8"),
    Datatype.INT8: np.dtype("<i1"),
    Datatype.INT16: np.dtype("<i2"),
    Datatype.INT32: np.dtype("<i4"),
    Datatype.INT64: np.dtype("<i8"),
    Datatype.FP16: np.dtype("<f2"),
    Datatype.FP32: np.dtype("<f4"),
    Datatype.FP64: np.dtype("<f8"),
}


def element_count(name: str, shape: Sequence[int]) -> int:
    """The number of elements of ``shape``; negative dimensions raise."""
    if any(d < 0 for d in shape):
        raise InvalidParameterError(f"input '{name}': shape {list(shape)} has a negative dimension")
    return math.prod(shape)


def serialize_bytes(elements: Iterable[bytes]) -> bytes:
    """``BYTES`` elements as the binary extension lays them out: length-prefixed, concatenated."""
    return b"".join(_LENGTH.pack(len(e)) + e for e in elements)


def deserialize_bytes(name: str, buffer: bytes, count: int) -> list[bytes]:
    """Exactly ``count`` length-prefixed elements filling ``buffer``; anything else raises."""
    elements: list[bytes] = []
    offset = 0
    view = memoryview(buffer)
    while offset < len(buffer):
        if offset + _LENGTH.size > len(buffer):
            raise InvalidParameterError(f"input '{name}': truncated BYTES element length at byte {offset}")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(buffer):
            raise InvalidParameterError(
                f"input '{name}': BYTES element {len(elements)} claims {length} bytes, "
                f"only {len(buffer) - offset} remain"
            )
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise InvalidParameterError(f"input '{name}': expected {count} BYTES elements, got {len(elements)}")
    return elements


def _object_array(elements: list[bytes], shape: Sequence[int]) -> npt.NDArray[np.object_]:
    array = np.empty(len(elements), dtype=np.object_)
    array[:] = elements
    return array.reshape(shape)


def tensor_from_binary(name: str, raw: bytes, datatype: Datatype, shape: Sequence[int]) -> npt.NDArray[Any]:
    """The tensor that ``raw`` (its binary-extension bytes) holds."""
    count = element_count(name, shape)
    if datatype is Datatype.BYTES:
        return _object_array(deserialize_bytes(name, raw, count), shape)
    dtype = NUMPY_DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidParameterError(
            f"input '{name}': {datatype} shape {list(shape)} needs {count * dtype.itemsize} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _flatten(data: Any) -> list[Any]:
    """Row-major elements of a flat or nested list."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


def _json_bytes(name: str, value: Any, as_base64: bool) -> bytes:
    if not isinstance(value, str):
        raise InvalidParameterError(
            f"input '{name}': BYTES elements must be strings in JSON, got {type(value).__name__}"
        )
    if not as_base64:
        return value.encode("utf-8")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterError(f"input '{name}': element is not valid base64") from None


def tensor_from_json(
    name: str, data: Any, datatype: Datatype, shape: Sequence[int], content_type: str | None = None
) -> npt.NDArray[Any]:
    """The tensor that JSON ``data`` (flat or nested, row-major) holds, checked against ``shape``."""
    count = element_count(name, shape)
    flat = _flatten(data)
    if len(flat) != count:
        raise InvalidParameterError(f"input '{name}': shape {list(shape)} needs {count} elements, got {len(flat)}")
    if datatype is Datatype.BYTES:
        as_base64 = (content_type or "").lower() == "base64"
        return _object_array([_json_bytes(name, v, as_base64) for v in flat], shape)
    if any(isinstance(v, (str, list, dict)) or v is None for v in flat):
        raise InvalidParameterError(f"input '{name}': {datatype} elements must be numbers")
    try:
        return np.asarray(flat, dtype=NUMPY_DTYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidParameterError(f"input '{name}': values do not fit {datatype}: {exc}") from None


def tensor_to_binary(array: npt.NDArray[Any], datatype: Datatype) -> bytes:
    """The binary-extension bytes of ``array`` (an ``object`` array of bytes for ``BYTES``)."""
    if datatype is Datatype.BYTES:
        return serialize_bytes(bytes(e) for e in array.reshape(-1))
    return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()


def tensor_to_json(array: npt.NDArray[Any], datatype: Datatype) -> list[Any]:
    """``array`` as a flat row-major JSON list (``BYTES`` elements decoded as UTF-8 text)."""
    flat = array.reshape(-1)
    if datatype is Datatype.BYTES:
        return [bytes(e).decode("utf-8", errors="replace") for e in flat]
    result: list[Any] = flat.tolist()
    return result
