"""Labelled images for classify models: one class name per image.

Two layouts: a folder per class (``DIR/<class name>/*.jpg``, the ImageNet/torchvision layout), or a
CSV file of ``file,label`` rows (file paths relative to the images folder; a first row reading
``file,label`` is a header and skipped).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from visionserve.errors import DatasetError
from visionserve.evaluation.datasets import read_text
from visionserve.evaluation.formats import IMAGE_SUFFIXES


@dataclass(frozen=True)
class ClassifySet:
    """``items``: (image path relative to the images folder, class name), in a stable order."""

    items: tuple[tuple[str, str], ...]
    source: str

    @property
    def names(self) -> list[str]:
        return sorted({name for _, name in self.items})


def read_folders(images: Path) -> ClassifySet:
    """Images in one sub-folder per class; the sub-folder's name is the class name."""
    if not images.is_dir():
        raise DatasetError(f"{images}: not a folder")
    items = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                items.append((path.relative_to(images).as_posix(), folder.name))
    if not items:
        raise DatasetError(f"{images}: no images in class sub-folders (DIR/<class>/*.jpg)")
    return ClassifySet(tuple(items), str(images))


def read_csv(path: Path) -> ClassifySet:
    """``file,label`` rows (see the module docstring)."""
    rows = list(csv.reader(io.StringIO(read_text(path))))
    if rows and [c.strip().lower() for c in rows[0]] == ["file", "label"]:
        rows = rows[1:]
    items = []
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DatasetError(f"{path}: row {number}: expected 'file,label', got {row!r}")
        items.append((row[0].strip(), row[1].strip()))
    if not items:
        raise DatasetError(f"{path}: no 'file,label' rows")
    return ClassifySet(tuple(items), str(path))
