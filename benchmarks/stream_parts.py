"""What the per-frame parts of a stream cost beside inference: motion gate, tracker, zones and lines.

The motion gate runs on scikit-image's astronaut stretched to 1280x720 and 1920x1080 with Gaussian sensor
noise (sigma 4); "resize+grey" is the baseline of the same shrink done the plain way (``INTER_AREA``
on the whole frame, then grey), measured in the same run. The tracker and the counting run on N boxes
moving at constant velocity (scores between 0.3 and 1, so both associations work). Prints the median
and p95 microseconds per frame.

    python -m benchmarks.stream_parts [--frames 300]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import cv2
import numpy as np
from skimage import data

from visionserve.core.detections import Detections
from visionserve.models.labels import Labels
from visionserve.streams.motion import MotionGate
from visionserve.streams.spec import LineSpec, ZoneSpec
from visionserve.streams.tracking import Tracker
from visionserve.streams.zones import Counting
from visionserve.types import BGRImage

T = TypeVar("T")


def _row(name: str, samples: list[float]) -> str:
    us = np.asarray(samples) * 1e6
    return f"{name:<34} {np.median(us):9.0f} {np.percentile(us, 95):9.0f}"


def _time(fn: Callable[[T], object], inputs: Sequence[T]) -> list[float]:
    """Seconds of each call of ``fn`` on ``inputs``, in order."""
    samples = []
    for value in inputs:
        begin = time.perf_counter()
        fn(value)
        samples.append(time.perf_counter() - begin)
    return samples


def _shrink_plainly(frame: BGRImage) -> object:
    return cv2.cvtColor(cv2.resize(frame, (160, 90), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)


def motion(frames: int) -> list[str]:
    rows = []
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    for width, height in ((1280, 720), (1920, 1080)):
        base = cv2.resize(photo, (width, height))
        noisy = [np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(4)]
        inputs = [noisy[i % 4] for i in range(frames)]
        rows.append(_row(f"motion gate {width}x{height}", _time(MotionGate().update, inputs)))
        rows.append(_row(f"  baseline resize+grey {width}x{height}", _time(_shrink_plainly, inputs)))
    return rows


def scene(n: int, frames: int) -> list[Detections]:
    """``frames`` frames of ``n`` 40x80 boxes moving at constant velocity."""
    rng = np.random.default_rng(n)
    start, velocity = rng.uniform(0, 1500, (n, 2)), rng.uniform(-6, 6, (n, 2))
    out = []
    for t in range(frames):
        corner = start + velocity * t
        boxes = np.concatenate([corner, corner + np.array([40, 80])], axis=1)
        out.append(Detections(boxes, rng.uniform(0.3, 1, n), np.zeros(n)))
    return out


def tracking(frames: int) -> list[str]:
    rows = []
    labels = Labels.from_list(["person"])
    zones = [ZoneSpec(name=f"z{k}", polygon=[(k * 300, 0), (k * 300 + 250, 0), (k * 300 + 250, 900)]) for k in range(4)]
    lines = [LineSpec(name=f"l{k}", start=(0, 200 * k + 100), end=(1800, 200 * k + 100)) for k in range(4)]
    for n in (5, 20, 50):
        inputs = scene(n, frames)
        rows.append(_row(f"tracker, {n} objects", _time(Tracker().update, inputs)))
        tracker = Tracker()
        tracked = [tracker.update(d) for d in inputs]
        rows.append(_row(f"  4 zones + 4 lines, {n} objects", _time(Counting(zones, lines, labels).update, tracked)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    print(f"{'part':<34} {'p50 us':>9} {'p95 us':>9}")
    for row in (*motion(args.frames), *tracking(args.frames)):
        print(row)


if __name__ == "__main__":
    main()
