"""The default model alone, with no server: the ceiling a server is measured against.

- throughput of P processes with T OpenCV threads each, each running blobFromImage + forward on an
  already decoded image back to back;
- latency of one image at a time in one process using every core.

    python -m benchmarks.model_alone --seconds 10
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import cv2
import numpy as np

from benchmarks.baselines.model import detect, load_net
from benchmarks.common import SIZES, jpeg, median_ms


def _worker(data: bytes, threads: int, seconds: float, start_at: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    cv2.setNumThreads(threads)
    net = load_net()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    detect(net, image)
    while time.time() < start_at:
        time.sleep(0.001)
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        detect(net, image)
        count += 1
    out.put(count)


def throughput(data: bytes, processes: int, threads: int, seconds: float) -> float:
    """Images per second of ``processes`` processes with ``threads`` OpenCV threads each."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 8.0  # time for every process to load the model
    procs = [ctx.Process(target=_worker, args=(data, threads, seconds, start_at, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def latency(data: bytes, seconds: float, decode: bool = False) -> tuple[float, float]:
    """(median ms per image, images/s) of one image at a time in this process with all cores; with
    ``decode`` each run also decodes the JPEG (full size, as a script without visionserve does)."""
    cv2.setNumThreads(os.cpu_count() or 1)
    net = load_net()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    detect(net, image)
    samples, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        if decode:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        detect(net, image)
        samples.append(time.perf_counter() - start)
    return median_ms(samples), len(samples) / seconds


def measure(size: str, seconds: float) -> dict[str, float]:
    data = jpeg(*SIZES[size])
    cores = os.cpu_count() or 1
    p50, one_proc = latency(data, seconds)
    with_decode, _ = latency(data, seconds / 2, decode=True)
    return {
        "procs_x1_thread": throughput(data, cores, 1, seconds),
        "one_proc_all_threads": one_proc,
        "latency_ms": p50,
        "latency_with_decode_ms": with_decode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for size in SIZES:
        m = measure(size, args.seconds)
        print(
            f"{size}: {os.cpu_count()} procs x 1 thread {m['procs_x1_thread']:.1f} img/s; "
            f"1 proc x {os.cpu_count()} threads {m['one_proc_all_threads']:.1f} img/s, p50 {m['latency_ms']:.1f} ms "
            f"({m['latency_with_decode_ms']:.1f} ms with the JPEG decode)"
        )


if __name__ == "__main__":
    main()
