"""An evaluation set uploaded as one zip archive, checked before anything is written.

Layout: the images in ``images/`` (or at the top), and the labels beside them:

- ``*.json`` at the top: COCO;
- ``labels/`` (``.txt`` files and ``data.yaml`` or ``classes.txt``): YOLO;
- ``annotations/`` or ``Annotations/`` (``.xml`` files): Pascal VOC;
- ``*.csv`` at the top (``file,label``): classify;
- none of these: classify, one folder per class under ``images/``.

Safety (:func:`check_archive`, from the zip's central directory alone): at most ``max_members``
entries and ``max_bytes`` bytes once extracted, no compression ratio above :data:`MAX_RATIO` for a
member (a zip bomb), no absolute path, no ``..``, no link, no encrypted member. Extraction writes only
regular files inside the target folder and stops at the declared sizes.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from visionserve.errors import DatasetError

#: A member may not expand more than this many times (text compresses ~10x, images ~1x).
MAX_RATIO = 200
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 20_000
    max_bytes: int = 2 * 1024**3


def _members(data: bytes) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise DatasetError(f"the archive is not a readable zip file: {exc}") from exc


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise DatasetError(f"archive member {name[:200]!r} leads outside the archive")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise DatasetError(f"archive member {name[:200]!r} is a link")
    if member.flag_bits & 0x1:
        raise DatasetError(f"archive member {name[:200]!r} is encrypted")
    if member.file_size > MAX_RATIO * max(member.compress_size, 1024):
        raise DatasetError(f"archive member {name[:200]!r} expands more than {MAX_RATIO} times")


def check_archive(data: bytes, limits: ArchiveLimits | None = None) -> None:
    """Refuse an archive that breaks the rules of the module docstring (:class:`DatasetError`)."""
    limits = limits or ArchiveLimits()
    members = _members(data)
    if len(members) > limits.max_members:
        raise DatasetError(f"the archive has {len(members)} entries; the limit is {limits.max_members}")
    total = 0
    for member in members:
        _check_member(member)
        total += member.file_size
    if total > limits.max_bytes:
        raise DatasetError(f"the archive expands to {total} bytes; the limit is {limits.max_bytes}")


def extract_archive(data: bytes, target: Path, limits: ArchiveLimits | None = None) -> None:
    """Check ``data`` then write its files under ``target`` (folders are created as needed)."""
    check_archive(data, limits)
    root = target.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            path = (root / member.filename.replace("\\", "/")).resolve()
            if not path.is_relative_to(root):
                raise DatasetError(f"archive member {member.filename[:200]!r} leads outside the archive")
            path.parent.mkdir(parents=True, exist_ok=True)
            _copy(archive, member, path)


def _copy(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> None:
    """Write ``member`` to ``path``, refusing one that holds more than its declared size."""
    written = 0
    try:
        with archive.open(member) as source, path.open("wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > member.file_size:
                    raise DatasetError(f"archive member {member.filename[:200]!r} is larger than it declares")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise DatasetError(f"archive member {member.filename[:200]!r} cannot be read: {exc}") from exc


def locate_set(root: Path) -> tuple[Path, Path | None]:
    """``(images folder, annotations path or None)`` of an extracted archive (module docstring)."""
    images = root / "images" if (root / "images").is_dir() else root
    top = sorted(p for p in root.iterdir() if p.is_file())
    for suffix in (".json", ".csv"):
        found = [p for p in top if p.suffix.lower() == suffix]
        if len(found) == 1:
            return images, found[0]
        if len(found) > 1:
            raise DatasetError(f"the archive has {len(found)} {suffix} files at its top; keep one")
    for folder in ("labels", "annotations", "Annotations"):
        if (root / folder).is_dir():
            return images, root / folder
    return images, None
