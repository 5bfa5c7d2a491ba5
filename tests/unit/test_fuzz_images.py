"""Fuzzing image decoding: every input is either an upright BGR image or an :class:`InputError`.

Hypothesis mutates the seeds of :mod:`tests.fuzz_corpus` (every format, CMYK, 16-bit, animated,
huge declared dimensions, zero bytes, wrong magic) and feeds them to the header reader and the
decoder, at full and reduced size. Anything else escaping (``cv2.error``, ``struct.error``, a
``MemoryError`` from a lying header) would be a 500 at the HTTP edge.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz_corpus import mutated, seeds

from visionserve.core.images import DecodedImage, decode_image, read_header
from visionserve.errors import ImageDecodeError, ImageTooLargeError, InputError

#: Small enough for CI (a few seconds); VISIONSERVE_FUZZ_EXAMPLES=20000 runs the same properties far longer.
CI_EXAMPLES = int(os.environ.get("VISIONSERVE_FUZZ_EXAMPLES", "400"))
MAX_PIXELS = 1_000_000


def check_decode(data: bytes, min_size: tuple[int, int] | None) -> DecodedImage | InputError:
    """Decode ``data``; the image, or the :class:`InputError` it raised. Warnings are ignored as in
    production (pytest turns them into errors, the server only logs them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = decode_image(data, MAX_PIXELS, min_size)
        except InputError as exc:
            return exc
    image = decoded.image
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert image.shape[0] > 0 and image.shape[1] > 0 and decoded.width * decoded.height <= MAX_PIXELS
    return decoded


@pytest.mark.parametrize("name", sorted(seeds()))
def test_every_seed_decodes_or_is_refused_with_the_right_error(name: str) -> None:
    outcome = check_decode(seeds()[name], None)
    if name.endswith("-declared"):
        assert isinstance(outcome, ImageTooLargeError)
    elif name in {"gif-animated", "zero-bytes", "text", "wrong-magic", "pdf", "svg", "tiff-float"}:
        assert isinstance(outcome, ImageDecodeError)
    else:
        assert isinstance(outcome, DecodedImage) and (outcome.width, outcome.height) in {(40, 30), (30, 40)}


@settings(max_examples=CI_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), min_size=st.sampled_from([None, (8, 8), (300, 300)]))
def test_mutated_images_decode_or_raise_input_errors(data: bytes, min_size: tuple[int, int] | None) -> None:
    check_decode(data, min_size)


@settings(max_examples=CI_EXAMPLES // 2, deadline=None)
@given(data=st.binary(max_size=512))
def test_random_bytes_never_crash_the_header_reader(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            header = read_header(data, MAX_PIXELS)
        except InputError:
            return
    assert header.width * header.height <= MAX_PIXELS
