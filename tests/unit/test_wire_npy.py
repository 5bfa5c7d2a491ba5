"""``.npy`` images: the header is checked against the bytes present before anything is allocated."""

from __future__ import annotations

import base64
import io
import json
import pickle
import tracemalloc

import numpy as np
import pytest
from numpy.lib import format as npy_format

from visionserve.api.wire.npy import load_npy
from visionserve.api.wire.roboflow import parse_object_detection_request
from visionserve.errors import ImageDecodeError, InvalidParameterError


def npy_header(shape: tuple[int, ...], descr: str = "|u1", version: tuple[int, int] = (1, 0)) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        npy_format.write_array_header_1_0(buffer, header)
    else:
        npy_format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def roboflow(data: bytes) -> bytes:
    image = {"type": "numpy", "value": base64.b64encode(data).decode()}
    return json.dumps({"model_id": "m", "image": image}).encode()


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_a_huge_declared_shape_is_refused_before_allocation(version: tuple[int, int]) -> None:
    bomb = npy_header((100_000, 100_000, 3), version=version)
    assert len(bomb) < 200
    tracemalloc.start()
    with pytest.raises(ImageDecodeError, match=r"declares shape \(100000, 100000, 3\)"):
        parse_object_detection_request(roboflow(bomb))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10_000_000


def test_arrays_are_read_in_their_order_and_dtype() -> None:
    array = np.asfortranarray(np.arange(24, dtype=np.uint8).reshape(2, 4, 3))
    buffer = io.BytesIO()
    np.save(buffer, array)
    np.testing.assert_array_equal(load_npy(buffer.getvalue(), "x"), array)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (npy_header((2, 2, 3)) + b"\0" * 11, "11 bytes follow"),
        (npy_header((2, 2, 3)) + b"\0" * 13, "13 bytes follow"),
        (npy_header((1,), "|O") + pickle.dumps(1), "objects"),
        (b"\x93NUMPY\x01\x00\x05\x00{'a'", "not a valid .npy header"),
        (b"\x93NUMPY\x09\x00", "not a valid .npy header"),
    ],
)
def test_headers_that_do_not_match_their_data_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        load_npy(data, "image")
