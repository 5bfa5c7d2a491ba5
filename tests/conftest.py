"""Fixtures shared by every test: real photos from scikit-image, encoded as files people send."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from visionserve.types import BGRImage

#: Photo name -> the TF-OD COCO label the default model must find in it.
PHOTOS = {"astronaut": "person", "chelsea": "cat", "coffee": "cup"}


def photo(name: str) -> BGRImage:
    """A scikit-image sample photo as a BGR uint8 array."""
    rgb = getattr(data, name)()
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def encode(image: BGRImage, ext: str = ".jpg", **params: int) -> bytes:
    flags = [v for kv in params.items() for v in (getattr(cv2, kv[0]), kv[1])]
    ok, buf = cv2.imencode(ext, image, flags)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def photos() -> dict[str, BGRImage]:
    return {name: photo(name) for name in PHOTOS}


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, BGRImage]) -> dict[str, str]:
    """Each photo written as a JPEG file; name -> path."""
    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name, image in photos.items():
        path = folder / f"{name}.jpg"
        path.write_bytes(encode(image, ".jpg", IMWRITE_JPEG_QUALITY=95))
        paths[name] = str(path)
    return paths
