"""The in-memory multipart reader gives what Starlette's form parser gives, and refuses what it refuses."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from visionserve.api.multipart import MAX_FIELD_BYTES, read_parts

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    head += "" if content_type is None else f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def request(data: bytes, content_type: str = CONTENT_TYPE, chunk: int | None = None) -> Request:
    """A request whose body arrives in chunks of ``chunk`` bytes (all at once when None)."""
    step = chunk or max(1, len(data))
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    headers = [(b"content-type", content_type.encode())]
    return Request({"type": "http", "method": "POST", "headers": headers, "query_string": b"", "app": None}, receive)


def ours(data: bytes, content_type: str = CONTENT_TYPE, chunk: int | None = None, limit: int = 8) -> list[tuple]:
    parts = asyncio.run(read_parts(request(data, content_type, chunk), max_files=limit, max_fields=limit))
    return [(p.name, p.data, p.filename, p.content_type) if p.is_file else (p.name, p.value) for p in parts]


def starlettes(data: bytes, content_type: str = CONTENT_TYPE, limit: int = 8) -> list[tuple]:
    async def parse() -> list[tuple]:
        async with request(data, content_type).form(max_files=limit, max_fields=limit) as form:
            items = []
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    items.append((name, await value.read(), value.filename, value.content_type))
                else:
                    items.append((name, value))
            return items

    return asyncio.run(parse())


JPEG = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"


def test_files_and_fields_come_in_order_with_their_types() -> None:
    data = body(
        part("image", JPEG, "a.jpg", "image/jpeg"),
        part("conf", b"0.25"),
        part("image", b"\x89PNG...", "b.png", "image/png"),
        part("note", "caf\u00e9".encode()),
        part("image", b"raw", "c.bin"),
    )
    expected = [
        ("image", JPEG, "a.jpg", "image/jpeg"),
        ("conf", "0.25"),
        ("image", b"\x89PNG...", "b.png", "image/png"),
        ("note", "caf\u00e9"),
        ("image", b"raw", "c.bin", None),
    ]
    assert ours(data) == expected == starlettes(data)


@settings(max_examples=40, deadline=None)
@given(chunk=st.integers(1, 400), value=st.binary(max_size=300), text=st.text(max_size=40))
def test_any_chunking_gives_the_same_parts_as_starlette(chunk: int, value: bytes, text: str) -> None:
    data = body(part("image", value, "x.jpg", "image/jpeg"), part("t", text.encode()), part("e", b""))
    assert ours(data, chunk=chunk) == starlettes(data)


def test_a_charset_in_the_content_type_decodes_the_fields() -> None:
    data = body(part("t", "\u00e9t\u00e9".encode("latin-1")))
    content_type = CONTENT_TYPE + "; charset=latin-1"
    assert ours(data, content_type) == [("t", "\u00e9t\u00e9")] == starlettes(data, content_type)


@pytest.mark.parametrize("charset", ["base64", "rot13", "no-such-charset"])
def test_charsets_that_are_no_text_encodings_fall_back_to_latin1(charset: str) -> None:
    data = body(part("t", "\u00e9".encode("latin-1")), part("image", b"x", "a.jpg", "image/jpeg"))
    content_type = f"{CONTENT_TYPE}; charset={charset}"
    assert (
        ours(data, content_type)
        == starlettes(data, content_type)
        == [("t", "\u00e9"), ("image", b"x", "a.jpg", "image/jpeg")]
    )


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (body(part("t", b"x")), "multipart/form-data", "Missing boundary in multipart."),
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            CONTENT_TYPE,
            'The Content-Disposition header field "name" must be provided.',
        ),
        (body(*[part("image", b"x", f"{i}.jpg") for i in range(3)]), CONTENT_TYPE, "Too many files. Maximum number"),
        (body(*[part(f"f{i}", b"x") for i in range(3)]), CONTENT_TYPE, "Too many fields. Maximum number"),
        (body(part("t", b"x" * (MAX_FIELD_BYTES + 1))), CONTENT_TYPE, "Part exceeded maximum size of 1024KB."),
        (b"this is not multipart at all", CONTENT_TYPE, "Invalid multipart data."),
    ],
)
def test_refusals_are_starlettes_400s(data: bytes, content_type: str, message: str) -> None:
    with pytest.raises(HTTPException) as ours_refused:
        ours(data, content_type, limit=2)
    with pytest.raises(HTTPException) as starlette_refused:
        starlettes(data, content_type, limit=2)
    assert ours_refused.value.status_code == starlette_refused.value.status_code == 400
    assert ours_refused.value.detail.startswith(message)
    assert starlette_refused.value.detail.startswith(message)


def test_a_large_file_part_is_kept_whole() -> None:
    big = bytes(range(256)) * 16384  # 4 MiB: over the text limit, which files do not have
    assert ours(body(part("image", big, "big.jpg", "image/jpeg")), chunk=65536)[0][1] == big


def test_repeated_part_headers_are_read_as_starlette_reads_them() -> None:
    data = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="old"\r\nContent-Type: image/png\r\n'
            f'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + b"x\r\n"
        + f"--{BOUNDARY}--\r\n".encode()
    )
    assert ours(data) == starlettes(data) == [("image", b"x", "a.jpg", "image/png")]
