"""Seed inputs and mutations for the fuzz tests of image decoding and the wire codecs.

The seeds are the images people actually send and the ones that break decoders: every accepted
format, grayscale, palette and alpha images, 16-bit and CMYK images, animated GIF/PNG/WebP, headers
that declare huge dimensions, a zero-byte body and wrong magic numbers. :func:`mutated` turns any seed
into a truncated, bit-flipped, spliced or re-headed variant, the classic mutations of a fuzzer,
driven by Hypothesis so that a failure shrinks to a small reproducer.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from functools import cache

import numpy as np
from hypothesis import strategies as st
from PIL import Image

#: Side of the seed images: small, so that thousands of decodes stay fast.
SIZE = (40, 30)


def _gradient(mode: str = "RGB") -> Image.Image:
    x = np.linspace(0, 255, SIZE[0], dtype=np.uint8)
    y = np.linspace(0, 255, SIZE[1], dtype=np.uint8)
    rgb = np.stack([np.add.outer(y, x) // 2, np.tile(x, (SIZE[1], 1)), np.tile(y[:, None], (1, SIZE[0]))], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB").convert(mode)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _frames(fmt: str) -> bytes:
    frames = [_gradient().rotate(angle) for angle in (0, 90, 180)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _sixteen_bit(fmt: str) -> bytes:
    deep = (np.arange(SIZE[0] * SIZE[1], dtype=np.uint16).reshape(SIZE[1], SIZE[0]) * 50).astype(np.uint16)
    return _save(Image.fromarray(deep), fmt)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose (valid, CRC-checked) header declares ``width x height`` with one row of data."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    data = _chunk(b"IDAT", zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + header + data + _chunk(b"IEND", b"")


def huge_bmp(width: int, height: int) -> bytes:
    """A 24-bit BMP header that declares ``width x height`` followed by a few bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + info + b"\x00" * 16


def huge_jpeg(width: int, height: int) -> bytes:
    """A valid small JPEG whose SOF marker is rewritten to declare ``width x height``."""
    data = bytearray(_save(_gradient(), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


_SEEDS: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: _save(_gradient(), "JPEG", quality=90),
    "jpeg-progressive": lambda: _save(_gradient(), "JPEG", progressive=True),
    "jpeg-gray": lambda: _save(_gradient("L"), "JPEG"),
    "jpeg-cmyk": lambda: _save(_gradient("CMYK"), "JPEG"),
    "jpeg-exif-rotated": lambda: _save(_gradient(), "JPEG", exif=_orientation_exif(6)),
    "png": lambda: _save(_gradient(), "PNG"),
    "png-rgba": lambda: _save(_gradient("RGBA"), "PNG"),
    "png-palette": lambda: _save(_gradient("P"), "PNG"),
    "png-gray-alpha": lambda: _save(_gradient("LA"), "PNG"),
    "png-1bit": lambda: _save(_gradient("1"), "PNG"),
    "png-16bit": lambda: _sixteen_bit("PNG"),
    "png-animated": lambda: _frames("PNG"),
    "webp": lambda: _save(_gradient(), "WEBP"),
    "webp-lossless-alpha": lambda: _save(_gradient("RGBA"), "WEBP", lossless=True),
    "webp-animated": lambda: _frames("WEBP"),
    "gif-animated": lambda: _frames("GIF"),
    "bmp": lambda: _save(_gradient(), "BMP"),
    "tiff": lambda: _save(_gradient(), "TIFF"),
    "tiff-cmyk": lambda: _save(_gradient("CMYK"), "TIFF"),
    "tiff-16bit": lambda: _sixteen_bit("TIFF"),
    "tiff-float": lambda: _save(_gradient("F"), "TIFF"),
    "tiff-multipage": lambda: _frames("TIFF"),
    "tiff-deflate": lambda: _save(_gradient(), "TIFF", compression="tiff_adobe_deflate"),
    "png-huge-declared": lambda: huge_png(100_000, 100_000),
    "png-max-declared": lambda: huge_png(2**31 - 1, 2**31 - 1),
    "png-100mp-declared": lambda: huge_png(10_000, 10_000),
    "bmp-huge-declared": lambda: huge_bmp(60_000, -60_000),
    "jpeg-huge-declared": lambda: huge_jpeg(65_500, 65_500),
    "zero-bytes": lambda: b"",
    "text": lambda: b"hello, this is not an image\n",
    "wrong-magic": lambda: b"\x89PNX" + _save(_gradient(), "PNG")[4:],
    "pdf": lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    "svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
}


def _orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@cache
def seeds() -> dict[str, bytes]:
    """Every seed, by name (built once)."""
    return {name: make() for name, make in _SEEDS.items()}


@st.composite
def mutated(draw: st.DrawFn, corpus: Callable[[], dict[str, bytes]] = seeds) -> bytes:
    """A seed with up to four mutations: truncation, byte flips, inserted or deleted runs, a
    spliced tail of another seed, or the first bytes of another seed (a lying magic number)."""
    pool = corpus()
    data = bytearray(pool[draw(st.sampled_from(sorted(pool)))])
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "splice", "magic"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            other = pool[draw(st.sampled_from(sorted(pool)))]
            data = bytearray(data[:at] + other[at:]) if kind == "splice" else bytearray(other[:8] + data[8:])
    return bytes(data)
