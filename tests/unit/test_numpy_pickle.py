"""Regression tests for what fuzzing found in the numpy readers of the Roboflow codec."""

from __future__ import annotations

import pickle
import struct
import time

import numpy as np
import pytest

from visionserve.api.wire.npy import load_npy
from visionserve.api.wire.numpy_pickle import load_pickled_array
from visionserve.errors import InvalidParameterError

PIXELS = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)


def memo_bomb(index: int) -> bytes:
    """A valid uint8 array pickle (protocol 5) whose first memo slot is ``index``: the C unpickler
    grows its memo table to twice that many pointers before storing anything."""
    data = pickle.dumps(PIXELS, protocol=5)
    at = data.index(b"\x94", data.index(b"_frombuffer"))  # the MEMOIZE after the name
    return data[:at] + b"r" + struct.pack("<I", index) + data[at + 1 :]


def test_a_huge_memo_index_is_refused_before_anything_is_allocated() -> None:
    # The old reader allocated and zeroed an 11 GB table for this 200-byte pickle (20 s of a worker).
    started = time.monotonic()
    with pytest.raises(InvalidParameterError, match="memo index 680825748"):
        load_pickled_array(memo_bomb(680_825_748), "image")
    assert time.monotonic() - started < 1.0


def test_a_frame_longer_than_the_pickle_is_refused() -> None:
    data = pickle.dumps(PIXELS, protocol=5)
    bomb = data[:3] + struct.pack("<Q", 2**63 - 1) + data[11:]
    with pytest.raises(InvalidParameterError, match="frame of"):
        load_pickled_array(bomb, "image")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("array", [PIXELS, np.asfortranarray(PIXELS), PIXELS.astype(">u2"), PIXELS.astype("<f4")])
def test_arrays_pickled_by_numpy_come_back_equal(protocol: int, array: np.ndarray) -> None:
    loaded = load_pickled_array(pickle.dumps(array, protocol=protocol), "image")
    assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


def test_states_never_reach_numpy_dtypes() -> None:
    data = pickle.dumps(PIXELS, protocol=2).replace(
        b"J\xff\xff\xff\xffJ\xff\xff\xff\xff", b"J\xa0\xff\xff\xffJ\x60\xff\xff\xff"
    )
    assert np.array_equal(load_pickled_array(data, "image"), PIXELS)
    assert np.dtype("u1").itemsize == 1 and np.dtype("u1").alignment == 1


@pytest.mark.parametrize(
    "value",
    [np.array(["a", "b"]), np.zeros(2, dtype=[("x", "u1")]), np.zeros((1,) * 5, np.uint8), np.array([object()])],
)
def test_arrays_that_are_not_plain_numbers_are_refused(value: np.ndarray) -> None:
    with pytest.raises(InvalidParameterError, match="not a pickled"):
        load_pickled_array(pickle.dumps(value, protocol=4), "image")


def test_an_npy_header_that_does_not_tokenize_is_a_clear_error() -> None:
    # numpy re-tokenizes a header it cannot parse; tokenize's own TokenError escaped as a 500.
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 3), ["
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header) + 1) + header + b"\n" + PIXELS.tobytes()
    with pytest.raises(InvalidParameterError, match=r"not a valid \.npy header"):
        load_npy(data, "image")
