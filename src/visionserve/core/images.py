"""Image bytes to BGR arrays: format check, pixel cap, EXIF orientation, reduced-size decoding."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from visionserve.core.image_headers import quick_header
from visionserve.errors import ImageDecodeError, ImageTooLargeError, UnsupportedMediaTypeError
from visionserve.types import BGRImage

#: Formats that OpenCV decodes and visionserve accepts, as Pillow names them.
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO"})
#: Default pixel cap: 50 megapixels, far above any phone photo, far below a decompression bomb.
DEFAULT_MAX_PIXELS = 50_000_000
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image and the size of the source it came from.

    ``image`` is ``(h, w, 3) uint8`` BGR, upright (EXIF orientation applied). When it was decoded at
    reduced size, ``width``/``height`` (the upright source size) are larger than the array's; boxes
    found on ``image`` map to source pixels with :meth:`scale`.
    """

    image: BGRImage
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)`` that take pixels of ``image`` to pixels of the source."""
        return self.width / self.image.shape[1], self.height / self.image.shape[0]


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an encoded image says: format and upright size."""

    format: str
    width: int
    height: int


def check_content_type(content_type: str | None) -> None:
    """Raise :class:`UnsupportedMediaTypeError` unless ``content_type`` is empty, ``image/*`` or
    ``application/octet-stream`` (the bytes themselves are checked when decoded)."""
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("image/") or media == "application/octet-stream":
        return
    raise UnsupportedMediaTypeError(f"unsupported content type {media!r}: send an image (JPEG, PNG, WebP, BMP)")


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Read format and upright size from the header without decoding pixels.

    Raises :class:`ImageDecodeError` for bytes that are not a supported image and
    :class:`ImageTooLargeError` when ``width * height > max_pixels``.
    """
    if not data:
        raise ImageDecodeError("empty image: no bytes received")
    quick = quick_header(data)
    fmt, width, height, orientation = quick if quick is not None else _pillow_header(data)
    if fmt not in SUPPORTED_FORMATS:
        raise ImageDecodeError(f"unsupported image format {fmt or 'unknown'}: send JPEG, PNG, WebP, BMP or TIFF")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image too large: {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return ImageHeader(fmt, width, height)


def _pillow_header(data: bytes) -> tuple[str, int, int, int]:
    """Format, stored size and EXIF orientation as Pillow reads them (any format it knows)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as pil:
                fmt = pil.format or ""
                width, height = pil.size
                orientation = pil.getexif().get(0x0112, 1) if fmt in {"JPEG", "MPO", "WEBP", "TIFF"} else 1
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("cannot decode image: not a JPEG, PNG, WebP, BMP or TIFF file") from exc
    return fmt, width, height, orientation


def reduction_factor(header: ImageHeader, min_width: int, min_height: int) -> int:
    """The largest JPEG DCT scaling factor (1, 2, 4 or 8) that still leaves at least
    ``min_width x min_height`` pixels, so that the model sees no fewer pixels than it needs."""
    if header.format not in {"JPEG", "MPO"} or min_width <= 0 or min_height <= 0:
        return 1
    for factor in (8, 4, 2):
        if header.width // factor >= min_width and header.height // factor >= min_height:
            return factor
    return 1


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_size: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode JPEG, PNG, WebP, BMP or TIFF bytes into an upright BGR image.

    Grayscale and RGBA become 3-channel BGR (alpha is dropped); 16-bit images become 8-bit.
    With ``min_size=(w, h)``, a large JPEG is decoded at 1/2, 1/4 or 1/8 scale as long as the
    result keeps at least ``w x h`` pixels (see :func:`reduction_factor`).

    Raises :class:`ImageDecodeError` or :class:`ImageTooLargeError`.
    """
    header = read_header(data, max_pixels)
    factor = reduction_factor(header, *min_size) if min_size else 1
    flags = _REDUCED_FLAGS[factor] if factor > 1 else cv2.IMREAD_COLOR
    image: BGRImage | None = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)  # type: ignore[assignment]
    if image is None or image.size == 0:
        raise ImageDecodeError(f"cannot decode image: the {header.format} data is corrupt or truncated")
    if factor == 1:
        return DecodedImage(image, image.shape[1], image.shape[0])
    return DecodedImage(image, header.width, header.height)


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read and decode an image file at full size (see :func:`decode_image`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image file {path}: {exc.strerror}") from exc
    return decode_image(data, max_pixels)
