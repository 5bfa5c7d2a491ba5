"""The quick JPEG/PNG header reader agrees with Pillow, and hands anything unusual to it."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data as samples

from visionserve.core.image_headers import quick_header
from visionserve.core.images import read_header


def pillow_view(data: bytes) -> tuple[str, int, int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF blocks
        pil = Image.open(io.BytesIO(data))
        return pil.format or "", *pil.size, pil.getexif().get(0x0112, 1) if pil.format == "JPEG" else 1


def encoded(image: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return buffer.getvalue()


def with_orientation(orientation: int) -> dict[str, object]:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "visionserve test camera"  # another tag before it in IFD0
    return {"exif": exif.tobytes()}


PHOTOS = {"chelsea": samples.chelsea(), "astronaut": samples.astronaut(), "gray": samples.camera()}
CASES = [
    pytest.param(name, fmt, options, id=f"{name}-{fmt}-{label}")
    for name in PHOTOS
    for fmt, options, label in [
        ("JPEG", {}, "plain"),
        ("JPEG", {"progressive": True}, "progressive"),
        ("JPEG", with_orientation(6), "rotated"),
        ("JPEG", with_orientation(3), "upside-down"),
        ("PNG", {}, "png"),
    ]
]


@pytest.mark.parametrize(("name", "fmt", "options"), CASES)
def test_real_photos_read_as_pillow_reads_them(name: str, fmt: str, options: dict[str, object]) -> None:
    data = encoded(PHOTOS[name], fmt, **options)
    assert quick_header(data) == pillow_view(data)


def test_an_upright_size_swaps_width_and_height_for_a_rotated_photo() -> None:
    photo = PHOTOS["chelsea"]  # 451 x 300
    header = read_header(encoded(photo, "JPEG", **with_orientation(6)))
    assert (header.width, header.height) == (photo.shape[0], photo.shape[1])


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF"])
def test_other_formats_are_left_to_pillow(fmt: str) -> None:
    data = encoded(PHOTOS["chelsea"], fmt)
    assert quick_header(data) is None
    assert (read_header(data).width, read_header(data).height) == (451, 300)


JPEG = encoded(PHOTOS["chelsea"], "JPEG", **with_orientation(8))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(cut=st.integers(0, 700), flips=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), max_size=4))
def test_damaged_headers_give_pillows_answer_or_none(cut: int, flips: list[tuple[int, int]]) -> None:
    damaged = bytearray(JPEG[: len(JPEG) - cut])
    for at, value in flips:
        if at < len(damaged):
            damaged[at] = value
    data = bytes(damaged)
    quick = quick_header(data)  # never raises
    if quick is None:
        return
    try:
        pillow = pillow_view(data)
    except (OSError, SyntaxError, ValueError):
        return  # Pillow refuses bytes the quick reader read; the decoder refuses them too
    if data.count(b"\xff\xc0") + data.count(b"\xff\xc2") == 1:  # one frame: both must see the same one
        assert quick == pillow
