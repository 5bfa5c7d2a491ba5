from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from tests.conftest import encode, photo

from visionserve.core.images import check_content_type, decode_image, load_image, read_header
from visionserve.errors import ImageDecodeError, ImageTooLargeError, UnsupportedMediaTypeError


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return photo("chelsea")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tiff"])
def test_formats_decode_to_bgr(chelsea: np.ndarray, ext: str) -> None:
    decoded = decode_image(encode(chelsea, ext))
    assert decoded.image.shape == chelsea.shape and decoded.image.dtype == np.uint8
    assert (decoded.width, decoded.height) == (451, 300)
    # Lossy formats stay close; lossless ones are exact.
    assert np.abs(decoded.image.astype(int) - chelsea).mean() < 6


def test_grayscale_rgba_and_16_bit_become_bgr(chelsea: np.ndarray) -> None:
    gray = cv2.cvtColor(chelsea, cv2.COLOR_BGR2GRAY)
    assert decode_image(encode(gray, ".png")).image.shape == (300, 451, 3)
    rgba = cv2.cvtColor(chelsea, cv2.COLOR_BGR2BGRA)
    out = decode_image(encode(rgba, ".png")).image
    assert out.shape == (300, 451, 3) and np.array_equal(out, chelsea)
    deep = chelsea.astype(np.uint16) * 257
    assert decode_image(encode(deep, ".png")).image.dtype == np.uint8


def _jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pil.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def test_exif_orientation_is_honoured(chelsea: np.ndarray) -> None:
    # Orientation 6: the stored image must be rotated 90 degrees clockwise to be upright.
    decoded = decode_image(_jpeg_with_orientation(chelsea, 6))
    assert (decoded.width, decoded.height) == (300, 451)
    upright = cv2.rotate(chelsea, cv2.ROTATE_90_CLOCKWISE)
    assert np.abs(decoded.image.astype(int) - upright).mean() < 6
    assert read_header(_jpeg_with_orientation(chelsea, 6)).width == 300


def test_reduced_jpeg_decoding_keeps_enough_pixels_and_reports_source_size() -> None:
    big = cv2.resize(photo("astronaut"), (1920, 1080))
    data = encode(big, ".jpg")
    decoded = decode_image(data, min_size=(300, 300))
    assert decoded.image.shape == (540, 960, 3)  # 1/2: 1/4 would leave 270 rows < 300
    assert (decoded.width, decoded.height) == (1920, 1080)
    assert decoded.scale == (2.0, 2.0)
    assert decode_image(data, min_size=(200, 100)).image.shape == (135, 240, 3)
    assert decode_image(encode(big, ".png"), min_size=(200, 100)).image.shape == (1080, 1920, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty image"),
        (b"definitely not an image", "cannot decode image"),
        (b"GIF89a" + b"\0" * 20, "cannot decode image|unsupported image format"),
    ],
)
def test_not_an_image(data: bytes, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(data)


def test_truncated_jpeg_is_an_error_or_decodes(chelsea: np.ndarray) -> None:
    data = encode(chelsea, ".jpg")
    with pytest.raises(ImageDecodeError):
        decode_image(data[:200])


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels, with a few bytes of (bogus) data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_pixel_bomb_is_rejected_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="image too large"):
        decode_image(_png_header(100_000, 100_000))
    with pytest.raises(ImageTooLargeError, match="10000x8000 pixels exceeds the limit of 50000000"):
        decode_image(_png_header(10_000, 8_000))
    with pytest.raises(ImageTooLargeError, match="limit of 1000 pixels"):
        decode_image(encode(np.zeros((40, 40, 3), np.uint8), ".png"), max_pixels=1000)


def test_content_types() -> None:
    for ok in (None, "", "image/jpeg", "image/png; charset=binary", "application/octet-stream"):
        check_content_type(ok)
    with pytest.raises(UnsupportedMediaTypeError, match="text/plain"):
        check_content_type("text/plain")


def test_load_image_missing_file(tmp_path: object) -> None:
    with pytest.raises(ImageDecodeError, match="cannot read image file"):
        load_image("/nonexistent/photo.jpg")
