"""Zip archives of evaluation sets: refused from their directory when unsafe, extracted inside the
target only, and their layout located."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from visionserve.errors import DatasetError
from visionserve.evaluation.archive import ArchiveLimits, check_archive, extract_archive, locate_set


def zip_of(members: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [
        (zip_of({}, link="images/x.jpg"), ArchiveLimits(), "is a link"),
        (zip_of({"a": b"1", "b": b"2", "c": b"3"}), ArchiveLimits(max_members=2), "3 entries; the limit is 2"),
        (zip_of({"a": b"x" * 2000, "b": b"y" * 2000}), ArchiveLimits(max_bytes=3000), "expands to 4000 bytes"),
        (zip_of({"..\\evil.json": b"{}"}), ArchiveLimits(), "leads outside"),
        (zip_of({"C:/evil.json": b"{}"}), ArchiveLimits(), "leads outside"),
    ],
    ids=["link", "members", "bytes", "backslash-traversal", "drive"],
)
def test_unsafe_archives_are_refused(data: bytes, limits: ArchiveLimits, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        check_archive(data, limits)


def test_extraction_stays_inside_and_layouts_are_located(tmp_path: Path) -> None:
    extract_archive(zip_of({"images/a.jpg": b"jpeg", "annotations.json": b"{}"}), tmp_path / "coco")
    assert locate_set(tmp_path / "coco") == (tmp_path / "coco" / "images", tmp_path / "coco" / "annotations.json")
    extract_archive(zip_of({"images/a.jpg": b"jpeg", "labels/a.txt": b"0 .5 .5 .1 .1"}), tmp_path / "yolo")
    assert locate_set(tmp_path / "yolo") == (tmp_path / "yolo" / "images", tmp_path / "yolo" / "labels")
    extract_archive(zip_of({"images/cat/a.jpg": b"jpeg"}), tmp_path / "folders")
    assert locate_set(tmp_path / "folders") == (tmp_path / "folders" / "images", None)
    extract_archive(zip_of({"a.json": b"{}", "b.json": b"{}"}), tmp_path / "two")
    with pytest.raises(DatasetError, match=r"2 \.json files"):
        locate_set(tmp_path / "two")
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["a.jpg", "a.jpg", "a.jpg", "a.json", "a.txt", "annotations.json", "b.json"]
