"""The size of a JPEG or PNG from its first bytes, without Pillow.

Every request reads its image's header before anything is decoded (the pixel cap and the
decoded-pixel budget are checked from it), and Pillow's ``Image.open`` parses every JPEG segment
(quantisation tables included) and the whole EXIF block to get there: a noticeable share of a
fast model's request. This reads just the start-of-frame segment and, in the first EXIF block,
the orientation tag. It answers only when the bytes are unambiguous; anything unusual (a
truncated segment, an EXIF block it cannot follow, a zero size) returns None, and the caller
asks Pillow, which gives the authoritative answer or error.
"""

from __future__ import annotations

import struct

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic), not DHT/JPG/DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers that stand alone, with no length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_START_OF_SCAN = 0xDA
_APP1 = 0xE1
_ORIENTATION_TAG = 0x0112
_SHORT = 3
#: Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ... DOUBLE).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def quick_header(data: bytes) -> tuple[str, int, int, int] | None:
    """``(format, width, height, exif_orientation)`` of a JPEG or PNG as stored (not yet turned
    upright), or None when the bytes are not a plainly readable JPEG or PNG header."""
    if data.startswith(_PNG_SIGNATURE):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    return None


def _png(data: bytes) -> tuple[str, int, int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return ("PNG", width, height, 1) if width and height else None


def _jpeg(data: bytes) -> tuple[str, int, int, int] | None:
    orientation: int | None = 1
    seen_exif = False
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        end = i + 2 + length
        if length < 2 or end > len(data) or marker == _START_OF_SCAN:
            return None
        if marker in _SOF_MARKERS:
            if length < 7 or orientation is None:
                return None
            height, width = struct.unpack_from(">HH", data, i + 5)
            return ("JPEG", width, height, orientation) if width and height else None
        if marker == _APP1 and not seen_exif and data.startswith(b"Exif\x00\x00", i + 4):
            seen_exif = True
            orientation = _exif_orientation(data[i + 10 : end])
        i = end
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag of IFD0 (1 when absent), or None for a block this cannot follow (any
    entry of an unknown type or with data beyond the block: readers differ on such blocks)."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    magic, offset = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    if offset + 2 + 12 * count > len(tiff):
        return None
    orientation = 1
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, values, pointer = struct.unpack_from(order + "HHII", tiff, entry)
        size = _TYPE_SIZES.get(kind, 0) * values
        if size == 0 or (size > 4 and pointer + size > len(tiff)):
            return None
        if tag == _ORIENTATION_TAG:
            if kind != _SHORT or values != 1:
                return None
            (orientation,) = struct.unpack_from(order + "H", tiff, entry + 8)
    return orientation
