"""A seed-style analysis module for tests, written into a model repository as its own folder.

``main.py`` is written the way the seeds' modules are: no visionserve import, ``import colours`` of
a neighbour by bare name, a "weights" file opened by a bare relative path in ``__init__``, and
``inference_by_path`` reading the picture with OpenCV. Per colour of ``weights.txt`` (``name B G R``
lines) it answers the box around the pixels of that colour (within 40 of it on every channel), with
candidates ``{name: 0.9, "<name>-ish": 0.3}``, and ``{name: 0.6, "<name>-ish": 0.5}`` when the blob
is smaller than ``SMALL`` pixels. Each construction appends ``pid device gpu CUDA_VISIBLE_DEVICES``
to ``loads.log`` in the module's folder, so that tests can see which process built it, and how.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from visionserve.types import BGRImage

MAIN = """
import os

import cv2
import numpy as np

import colours


class ColourAnalyser:
    def __init__(self, device=None, gpu=None):
        with open("weights.txt") as handle:  # relative to the module's folder
            self.table = colours.parse(handle.read())
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "loads.log"), "a") as log:
            log.write(f"{os.getpid()} {device} {gpu} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\\n")

    def inference_by_path(self, image_path):
        image = cv2.imread(image_path)
        found = []
        for name, bgr in self.table:
            near = (np.abs(image.astype(np.int16) - np.array(bgr, np.int16)) <= 40).all(axis=2)
            ys, xs = np.nonzero(near)
            if len(xs) == 0:
                continue
            x, y = int(xs.min()), int(ys.min())
            w, h = int(xs.max()) + 1 - x, int(ys.max()) + 1 - y
            small = len(xs) < colours.SMALL
            found.append([(x, y, w, h), {name: 0.6 if small else 0.9, name + "-ish": 0.5 if small else 0.3}])
        return found
"""

COLOURS = """
SMALL = 400


def parse(text):
    table = []
    for line in text.splitlines():
        if line.strip():
            name, b, g, r = line.split()
            table.append((name, (int(b), int(g), int(r))))
    return table
"""

WEIGHTS = "red 0 0 255\ngreen 0 200 0\nblue 255 0 0\n"


def write_colour_module(repository: Path, name: str = "colours", yaml_text: str | None = None) -> Path:
    """Write the module folder ``repository/name`` (with ``yaml_text`` as its ``model.yaml`` when
    given); returns the folder."""
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(MAIN, encoding="utf-8")
    (folder / "colours.py").write_text(COLOURS, encoding="utf-8")
    (folder / "weights.txt").write_text(WEIGHTS, encoding="utf-8")
    if yaml_text is not None:
        (folder / "model.yaml").write_text(yaml_text, encoding="utf-8")
    return folder


def loads(folder: Path) -> list[list[str]]:
    """The ``pid device gpu CUDA_VISIBLE_DEVICES`` lines of ``loads.log``, split."""
    log = folder / "loads.log"
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def blobs_image() -> BGRImage:
    """A 320x240 grey picture with a red 60x40 block at (20, 30) and a small 10x10 green one at (200, 150)."""
    image = np.full((240, 320, 3), 90, np.uint8)
    image[30:70, 20:80] = (0, 0, 255)
    image[150:160, 200:210] = (0, 200, 0)
    return image


def png(image: BGRImage) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()
