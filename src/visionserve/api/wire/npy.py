"""``.npy`` bytes from a request, read without trusting the header.

``np.load`` allocates the array that the header declares before it reads the data, so a 100-byte
file declaring ``(100000, 100000, 3)`` costs 30 GB. :func:`load_npy` reads the header with
``numpy.lib.format``'s helpers, checks the dtype and that the declared size equals the bytes present,
and only then makes an array over those bytes (one copy at most).
"""

from __future__ import annotations

import io
import math
import tokenize
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy_format

from visionserve.errors import InvalidParameterError

MAGIC = b"\x93NUMPY"


def load_npy(data: bytes, where: str) -> npt.NDArray[Any]:
    """The array in the ``.npy`` bytes ``data``. Raises :class:`InvalidParameterError` naming
    ``where`` for a bad header, an object dtype (pickles are not read), or a declared shape whose
    size differs from the bytes that follow the header."""
    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        if version not in {(1, 0), (2, 0)}:
            raise ValueError(f"format version {version} is not supported (1.0 and 2.0 are)")
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    # numpy re-tokenizes a header that does not parse, and tokenize raises its own TokenError.
    except (ValueError, TypeError, SyntaxError, EOFError, tokenize.TokenError) as exc:
        raise InvalidParameterError(f"{where}: not a valid .npy header: {exc}") from None
    if dtype.hasobject:
        raise InvalidParameterError(f"{where}: .npy arrays of Python objects are not accepted")
    present = len(data) - stream.tell()
    declared = math.prod(shape) * dtype.itemsize
    if declared != present:
        raise InvalidParameterError(
            f"{where}: the .npy header declares shape {shape} of {dtype} ({declared} bytes), "
            f"but {present} bytes follow it"
        )
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")
