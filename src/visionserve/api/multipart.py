"""``multipart/form-data`` bodies read straight into memory, part by part.

Starlette's ``request.form()`` spools each file part into a temporary file object and hands it out
as an ``UploadFile`` to be read back; the image routes want the bytes, and the body is already
bounded by the size limit of the edge (:mod:`visionserve.api.limits`), so :func:`read_parts` feeds
the body to the same parser (``python-multipart``) and keeps each part as ``bytes``: a third of the
work on a typical upload. Its refusals are Starlette's, word for word and with the same status
(400): a missing boundary, a part without a name, too many files or fields, a text field over
1 MiB, a body that is not valid multipart.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

#: The largest text field (file parts are bounded only by the body's own limit).
MAX_FIELD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One part of the body: a file part (``filename`` is not None, ``content_type`` as sent) or a
    text field (``value`` holds the decoded text)."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None
    charset: str = "utf-8"

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    @property
    def value(self) -> str:
        return _decode(self.data, self.charset)


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except (UnicodeDecodeError, LookupError):  # LookupError: a bytes-to-bytes codec such as base64
        return data.decode("latin-1")


def _refuse(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


class _Collector:
    """The parser's callbacks: headers and data of the current part, the finished parts so far."""

    def __init__(self, charset: str, max_files: int, max_fields: int) -> None:
        self.parts: list[Part] = []
        self._charset = charset
        self._max_files = max_files
        self._max_fields = max_fields
        self._files = 0
        self._fields = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._chunks: list[memoryview] = []
        self._size = 0
        self._name = ""
        self._filename: str | None = None

    def on_part_begin(self) -> None:
        self._headers = {}
        self._chunks = []
        self._size = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        # A repeated header, as Starlette reads it: the last Content-Disposition, the first of others.
        name = self._header_name.lower()
        if name == b"content-disposition":
            self._headers[name] = self._header_value
        else:
            self._headers.setdefault(name, self._header_value)
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise _refuse('The Content-Disposition header field "name" must be provided.')
        self._name = _decode(options[b"name"], self._charset)
        if b"filename" in options:
            self._files += 1
            if self._files > self._max_files:
                raise _refuse(f"Too many files. Maximum number of files is {self._max_files}.")
            self._filename = _decode(options[b"filename"], self._charset)
        else:
            self._fields += 1
            if self._fields > self._max_fields:
                raise _refuse(f"Too many fields. Maximum number of fields is {self._max_fields}.")
            self._filename = None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._filename is None and self._size > MAX_FIELD_BYTES:
            raise _refuse(f"Part exceeded maximum size of {MAX_FIELD_BYTES // 1024}KB.")
        self._chunks.append(memoryview(data)[start:end])  # copied once, when the part ends

    def on_part_end(self) -> None:
        content_type = self._headers.get(b"content-type")
        self.parts.append(
            Part(
                self._name,
                b"".join(self._chunks),
                self._filename,
                None if content_type is None else content_type.decode("latin-1"),
                self._charset,
            )
        )


def _charset(params: dict[bytes, bytes]) -> str:
    try:
        return codecs.lookup(params.get(b"charset", b"utf-8").decode("latin-1")).name
    except LookupError:
        return "latin-1"


def is_multipart(request: Request) -> bool:
    """Whether ``request`` says its body is ``multipart/form-data``."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "multipart/form-data"


async def read_parts(request: Request, *, max_files: int, max_fields: int) -> list[Part]:
    """Every part of ``request``'s ``multipart/form-data`` body, in order. Raises Starlette's
    ``HTTPException`` (400) for the bodies its form parser refuses (see the module docstring)."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    if b"boundary" not in params:
        raise _refuse("Missing boundary in multipart.")
    collector = _Collector(_charset(params), max_files, max_fields)
    callbacks = {
        "on_part_begin": collector.on_part_begin,
        "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
    }
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise _refuse("Invalid multipart data.") from exc
    return collector.parts
