"""Numpy arrays from untrusted pickles (Roboflow's ``numpy`` images), without trusting the pickle.

Admitting only numpy's reconstruction globals is not enough. Fuzzing found two ways a few hundred
bytes take the server down through the C unpickler and numpy's own ``__setstate__`` methods:

* a ``LONG_BINPUT`` memo index of 680 million makes the unpickler allocate (and zero) an 11 GB memo
  table: 20 seconds of a worker and most of the machine's memory for one request;
* numpy's ``__setstate__`` methods run on whatever state the pickle gives (for ``'u1'`` on the
  process-wide dtype singleton itself), and a fuzzed state made CPython raise ``SystemError``
  (``Objects/dictobject.c: bad argument to internal function``), which no handler expects.

So :func:`load_pickled_array` first walks the opcodes with :mod:`pickletools` (which allocates
nothing that the bytes do not hold) and bounds their count, memo indices and frame lengths; then it
unpickles with stand-ins for numpy's globals that check every argument and build a fresh array with
:func:`numpy.frombuffer`. numpy itself never sees the pickle's states.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.errors import InvalidParameterError

#: Opcodes a pickled array needs: about 40 (protocol 2) or 20 (protocol 5).
MAX_OPCODES = 1_000
#: Memo slots an array pickle uses: one per opcode at most.
MAX_MEMO_INDEX = MAX_OPCODES
_MEMO_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})
#: Dimensions an image array may have (the route wants 3: height, width, channels).
MAX_DIMENSIONS = 4


class _ArrayClass:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _Dtype:
    """A dtype named by a pickle: a numeric type code, with the byte order its state gives."""

    def __init__(self, descr: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(descr, str) or len(descr) > 8:
            raise pickle.UnpicklingError(f"dtype {descr!r} is not a numeric type code")
        dtype = np.dtype(descr)
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise pickle.UnpicklingError(f"dtype {descr!r} is not a numeric type")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
        if order == "<" or order == ">":
            self.dtype = self.dtype.newbyteorder("<" if order == "<" else ">")


def _array(data: Any, dtype: Any, shape: Any, fortran: bool) -> npt.NDArray[Any]:
    """A fresh array over ``data``; every argument is checked first."""
    if isinstance(data, bytearray):
        data = bytes(data)
    if not isinstance(data, bytes) or not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError("array data must be bytes with a numeric dtype")
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_DIMENSIONS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of at most {MAX_DIMENSIONS} sizes")
    if math.prod(shape) * dtype.dtype.itemsize != len(data):
        raise pickle.UnpicklingError(f"array of shape {shape} and dtype {dtype.dtype} does not fit {len(data)} bytes")
    flat = np.frombuffer(data, dtype=dtype.dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


class _Reconstructed:
    """What ``numpy._core.multiarray._reconstruct`` stands for: an empty array that ``BUILD``
    fills with ``(version, shape, dtype, is_fortran, data)``."""

    def __init__(self, cls: Any, shape: Any, typecode: Any) -> None:
        if cls is not _ArrayClass:
            raise pickle.UnpicklingError("only numpy.ndarray can be reconstructed")
        self.array: npt.NDArray[Any] | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("array state must be (version, shape, dtype, is_fortran, data)")
        _, shape, dtype, fortran, data = state
        self.array = _array(data, dtype, shape, bool(fortran))


def _frombuffer(data: Any, dtype: Any, shape: Any, order: Any) -> npt.NDArray[Any]:
    if order not in {"C", "F"}:
        raise pickle.UnpicklingError(f"array order must be 'C' or 'F', got {order!r}")
    return _array(data, dtype, shape, order == "F")


def _encode(text: Any, encoding: Any) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it: bytes as a latin-1 string."""
    if not isinstance(text, str) or encoding not in {"latin1", "latin-1"}:
        raise pickle.UnpicklingError("_codecs.encode is only admitted for latin-1 text")
    return text.encode("latin-1")


_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy._core.multiarray", "_reconstruct"): _Reconstructed,
    ("numpy.core.multiarray", "_reconstruct"): _Reconstructed,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _ArrayClass,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a numpy image")
        return _GLOBALS[module, name]


def check_opcodes(data: bytes) -> None:
    """Refuse (:class:`pickle.UnpicklingError`) a pickle whose opcodes do not parse, number more
    than :data:`MAX_OPCODES`, name memo slots past :data:`MAX_MEMO_INDEX`, or declare a frame longer
    than the data."""
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(data), start=1):
            if count > MAX_OPCODES:
                raise pickle.UnpicklingError(f"more than {MAX_OPCODES} pickle opcodes")
            size = arg if isinstance(arg, int) else 0
            if opcode.name in _MEMO_OPCODES and size > MAX_MEMO_INDEX:
                raise pickle.UnpicklingError(f"memo index {arg} is out of range")
            if opcode.name == "FRAME" and size > len(data):
                raise pickle.UnpicklingError(f"frame of {arg} bytes in a pickle of {len(data)}")
    except ValueError as exc:  # pickletools' readers report short and malformed arguments so
        raise pickle.UnpicklingError(str(exc)) from None


def load_pickled_array(data: bytes, where: str) -> npt.NDArray[Any]:
    """The numpy array pickled in ``data`` (any protocol, as ``pickle.dumps(array)`` writes it).

    Raises :class:`InvalidParameterError` naming ``where`` for anything else: a malformed or
    oversized pickle, a global other than numpy's array reconstruction, a non-numeric dtype, a shape
    that does not fit the data, or a value that is not an array.
    """
    try:
        check_opcodes(data)
        value = _Unpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidParameterError(f"{where}: not a pickled or .npy numpy array: {exc}") from None
    if isinstance(value, _Reconstructed) and value.array is not None:
        value = value.array
    if not isinstance(value, np.ndarray):
        raise InvalidParameterError(f"{where}: the numpy value is not an array")
    return value
