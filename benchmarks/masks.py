"""What masks cost: 20 instance masks on a 1920x1080 photo, encoded as polygons and as COCO RLE.

The masks are built the way a YOLOv8-seg model gives them (a probability bitmap at prototype
resolution, 1/4 of a 640x640 input, over each instance's box), from real shapes: the foreground of
scikit-image's ``coffee()`` cup, resized into 20 boxes spread over the photo. Prints the median ms per
image for ``box_rows`` with each mask format (rasterising at 1080p included), wall time and CPU time
(one OpenCV thread, so that CPU time is the work itself on a busy machine), ``none`` as the baseline
of the same rows without masks, and the memory the compact masks hold against dense ``N x H x W``
booleans.

    python -m benchmarks.masks [--repeat 30] [--instances 20]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from skimage import data

from benchmarks.common import median_ms
from visionserve.core.detections import Detections
from visionserve.core.masks import InstanceMasks
from visionserve.models.labels import Labels
from visionserve.render.mask_encoding import MaskFormat
from visionserve.render.rows import box_rows

WIDTH, HEIGHT = 1920, 1080
#: Prototype cells per source pixel for a 1080p photo letterboxed into 640x640: 160 / 1920.
PROTO_SCALE = 160 / WIDTH


def cup_shape() -> np.ndarray:
    """A real object's silhouette: the bright cup of ``coffee()``, as probabilities in [0, 1]."""
    grey = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (9, 9), 0)


def detections(count: int) -> Detections:
    """``count`` instances in a grid of boxes of 200-400 px over the photo, each mask the cup shape
    at prototype resolution over its box."""
    rng = np.random.default_rng(0)
    shape = cup_shape()
    boxes, bitmaps = [], []
    for i in range(count):
        w, h = rng.integers(200, 400, 2)
        x = (i % 5) * (WIDTH - 400) / 4 + rng.integers(0, 20)
        y = (i // 5) * (HEIGHT - 400) / 3 + rng.integers(0, 20)
        cells = (max(1, round(int(w) * PROTO_SCALE)), max(1, round(int(h) * PROTO_SCALE)))
        bitmaps.append(np.round(cv2.resize(shape, cells, interpolation=cv2.INTER_AREA) * 255).astype(np.uint8))
        boxes.append((x, y, x + w, y + h))
    xyxy = np.array(boxes, np.float32)
    masks = InstanceMasks(tuple(bitmaps), xyxy)
    return Detections(xyxy, rng.uniform(0.3, 0.9, count), np.zeros(count, np.int32), masks=masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--instances", type=int, default=20)
    args = parser.parse_args()
    found = detections(args.instances)
    labels = Labels({0: "cup"})
    assert found.masks is not None
    compact = sum(b.nbytes for b in found.masks.bitmaps) + found.masks.regions.nbytes
    print(f"{args.instances} masks on a {WIDTH}x{HEIGHT} image, median of {args.repeat} runs")
    dense = args.instances * WIDTH * HEIGHT / 2**20
    print(f"memory: compact {compact / 1024:.1f} KiB; dense N x H x W booleans {dense:.1f} MiB")
    # One OpenCV thread: the CPU time then measures the work itself, even on a machine that other
    # processes keep busy (wall time there includes waiting for a core).
    cv2.setNumThreads(1)
    print("mask format   wall ms   CPU ms per image   (masks rasterised at source resolution, then encoded)")
    for mask_format in (MaskFormat.NONE, MaskFormat.POLYGON, MaskFormat.RLE):
        wall, cpu = [], []
        for _ in range(args.repeat + 2):
            start, start_cpu = time.perf_counter(), time.process_time()
            box_rows(found, labels, (WIDTH, HEIGHT), mask_format)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        print(f"{mask_format.value:12} {median_ms(wall[2:]):8.2f} {median_ms(cpu[2:]):10.2f}")


if __name__ == "__main__":
    main()
