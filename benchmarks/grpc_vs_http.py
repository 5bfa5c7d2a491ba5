"""KServe v2 over gRPC beside HTTP: the same server, model and JPEG, in one run.

Starts one ``visionserve serve --grpc-port`` and drives its default model in a closed loop at each
concurrency with three clients, interleaved round by round so that the machine's drift hits them alike:

- ``grpc``: ``tritonclient.grpc`` ``infer()`` with a ``BYTES [1]`` input (the JPEG), every output;
- ``kserve-http``: ``tritonclient.http`` ``infer()`` with the same input, binary outputs;
- ``native``: ``POST /v1/detect`` with a multipart upload (:mod:`benchmarks.loadgen`).

Each thread has its own client (one connection, kept alive). Prints images/s, p50 and p95 per cell,
then the gRPC figures as ratios of the KServe-HTTP and native ones from this run.

    python -m benchmarks.grpc_vs_http [--seconds 8] [--rounds 2] [--size 640x480]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from benchmarks.common import SIZES, jpeg, percentile_ms
from benchmarks.loadgen import run_load, upload
from benchmarks.server import free_port, running_process

CONCURRENCY = (1, 16)
MODEL = "ssd-mobilenet-v2-coco"
OUTPUTS = ("boxes", "scores", "class_ids", "labels", "num_detections")
Call = Callable[[], None]


@dataclass
class Cell:
    """The pooled results of one client at one concurrency, over every round."""

    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def closed_loop(make_call: Callable[[], Call], concurrency: int, seconds: float, cell: Cell) -> None:
    """``concurrency`` threads, each with its own ``make_call()``, calling back to back for ``seconds``."""
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        call = make_call()
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                call()
                ok = True
            except Exception:  # noqa: BLE001 - a benchmark counts failures, whatever they are
                ok = False
            elapsed = time.perf_counter() - start
            with lock:
                cell.latencies.append(elapsed)
                cell.ok += ok
                cell.errors += not ok

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    cell.seconds += time.perf_counter() - started


def grpc_call(target: str, image: bytes) -> Call:
    client = triton_grpc.InferenceServerClient(target)
    tensor = triton_grpc.InferInput("image", [1], "BYTES").set_data_from_numpy(np.array([image], dtype=np.object_))
    outputs = [triton_grpc.InferRequestedOutput(name) for name in OUTPUTS]

    def call() -> None:
        client.infer(MODEL, [tensor], outputs=outputs).as_numpy("num_detections")

    return call


def kserve_http_call(address: str, image: bytes) -> Call:
    client = triton_http.InferenceServerClient(address, network_timeout=120)
    tensor = triton_http.InferInput("image", [1], "BYTES").set_data_from_numpy(np.array([image], dtype=np.object_))
    outputs = [triton_http.InferRequestedOutput(name, binary_data=True) for name in OUTPUTS]

    def call() -> None:
        client.infer(MODEL, [tensor], outputs=outputs).as_numpy("num_detections")

    return call


def native_load(base: str, image: bytes, concurrency: int, seconds: float, cell: Cell) -> None:
    stats = run_load(base, upload("/v1/detect", "image", image), concurrency, seconds)
    cell.ok += stats.requests - stats.errors
    cell.errors += stats.errors
    cell.seconds += stats.seconds
    cell.latencies.extend(stats.latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per cell and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each running every client once")
    parser.add_argument("--size", default="640x480", choices=sorted(SIZES))
    args = parser.parse_args()
    image = jpeg(*SIZES[args.size])
    grpc_port = free_port()
    command = [sys.executable, "-m", "visionserve", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    command += ["--grpc-port", str(grpc_port), "--no-access-log"]
    clients = ("grpc", "kserve-http", "native")
    cells = {(name, c): Cell() for name in clients for c in CONCURRENCY}
    with running_process("visionserve", command, "/readyz") as (base, _):
        target, address = f"127.0.0.1:{grpc_port}", base.removeprefix("http://")
        runs: dict[str, Callable[[int, float, Cell], None]] = {
            "grpc": lambda c, s, cell: closed_loop(lambda: grpc_call(target, image), c, s, cell),
            "kserve-http": lambda c, s, cell: closed_loop(lambda: kserve_http_call(address, image), c, s, cell),
            "native": lambda c, s, cell: native_load(base, image, c, s, cell),
        }
        for name in clients:
            runs[name](4, 2.0, Cell())  # warm-up: connections, threads, the model's first passes
        for round_index in range(args.rounds):
            order = clients if round_index % 2 == 0 else tuple(reversed(clients))
            for concurrency in CONCURRENCY:
                for name in order:
                    runs[name](concurrency, args.seconds, cells[(name, concurrency)])
    print(f"{os.cpu_count()} cores; {args.size} JPEG; {args.rounds} x {args.seconds:.0f} s per cell; model {MODEL}\n")
    print(f"{'client':12} {'conc':>4} {'img/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'errors':>6}")
    for (name, concurrency), cell in cells.items():
        print(
            f"{name:12} {concurrency:>4} {cell.throughput:7.1f} {percentile_ms(cell.latencies, 50):7.1f} "
            f"{percentile_ms(cell.latencies, 95):7.1f} {cell.errors:>6}"
        )
    print()
    for concurrency in CONCURRENCY:
        grpc = cells[("grpc", concurrency)]
        for other in ("kserve-http", "native"):
            base_cell = cells[(other, concurrency)]
            print(
                f"c={concurrency:<3} grpc / {other:12} img/s x{grpc.throughput / max(base_cell.throughput, 1e-9):.2f}"
                f"  p50 x{percentile_ms(grpc.latencies, 50) / percentile_ms(base_cell.latencies, 50):.2f}"
            )


if __name__ == "__main__":
    main()
