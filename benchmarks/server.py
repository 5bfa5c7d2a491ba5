"""Servers side by side: visionserve against the model alone, a hand-written Flask server and LitServe.

Starts each server in turn on a free loopback port, drives it with :mod:`benchmarks.loadgen` at
concurrency 1, 4 and 16 with a 640x480 and a 1920x1080 JPEG, and prints throughput, p50/p95/p99
latency and errors; then the two targets as ratios from this run:
- at concurrency 16, visionserve's throughput / the model alone's best (one process per core);
- at concurrency 1, visionserve's p50 / the model alone's latency with all cores on one image.

    python -m benchmarks.server [--seconds 10] [--only visionserve,flask]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks import model_alone
from benchmarks.common import SIZES, jpeg
from benchmarks.loadgen import Stats, run_load, upload

CONCURRENCY = (1, 4, 16)
#: name -> (command, health path, detect path)
SERVERS: dict[str, tuple[list[str], str, str]] = {
    "visionserve": (
        [sys.executable, "-m", "visionserve", "serve", "--host", "127.0.0.1", "--port", "{port}"],
        "/readyz",
        "/v1/detect",
    ),
    "flask": ([sys.executable, "-m", "benchmarks.baselines.flask_app", "--port", "{port}"], "/health", "/detect"),
    "litserve-batch": (
        [
            sys.executable,
            "-m",
            "benchmarks.baselines.litserve_app",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--batch",
            "4",
        ],
        "/health",
        "/predict",
    ),
    "litserve-2workers": (
        [
            sys.executable,
            "-m",
            "benchmarks.baselines.litserve_app",
            "--port",
            "{port}",
            "--workers",
            "2",
            "--batch",
            "4",
        ],
        "/health",
        "/predict",
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(name: str) -> Iterator[str]:
    command, health, _ = SERVERS[name]
    with running_process(name, command, health) as (base, _proc):
        yield base


@contextlib.contextmanager
def running_process(name: str, command: list[str], health: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start ``command`` (``{port}`` filled in with a free loopback port), wait until ``health`` answers
    200, yield the base URL and the process; stop it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [part.format(port=port) for part in command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + health, timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.3)
        yield base, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bench_server(name: str, seconds: float) -> dict[str, dict[int, Stats]]:
    results: dict[str, dict[int, Stats]] = {}
    with running(name) as base:
        for size, (w, h) in SIZES.items():
            request = upload(SERVERS[name][2], "image", jpeg(w, h))
            run_load(base, request, 4, 2.0)  # warm-up
            results[size] = {c: run_load(base, request, c, seconds) for c in CONCURRENCY}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--only", default=",".join(SERVERS), help="comma-separated servers to run")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    alone = {size: model_alone.measure(size, args.seconds) for size in SIZES}
    table = {name: bench_server(name, args.seconds) for name in args.only.split(",")}
    print(f"{os.cpu_count()} cores; {args.seconds:.0f} s per cell; img/s and ms\n")
    print(f"{'server':18} {'image':10} {'conc':>4} {'img/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'errors':>6}")
    for size, m in alone.items():
        print(
            f"{'model alone':18} {size:10} {'':>4} {m['procs_x1_thread']:7.1f}   (one process per core, 1 thread each)"
        )
        print(
            f"{'model alone':18} {size:10} {1:>4} {m['one_proc_all_threads']:7.1f} {m['latency_ms']:7.1f}"
            "   (one process, all cores, one image at a time)"
        )
        print(
            f"{'model alone+decode':18} {size:10} {1:>4} {'':>7} {m['latency_with_decode_ms']:7.1f}"
            "   (the same with imdecode)"
        )
    for name, by_size in table.items():
        for size, by_conc in by_size.items():
            for c, s in by_conc.items():
                print(
                    f"{name:18} {size:10} {c:>4} {s.throughput:7.1f} {s.p(50):7.1f} {s.p(95):7.1f} {s.p(99):7.1f}"
                    f" {s.errors:>6}"
                )
    if "visionserve" in table:
        print("\nTargets (visionserve / model alone, same run):")
        for size, m in alone.items():
            vs = table["visionserve"][size]
            print(
                f"  {size}: throughput at 16 = {vs[16].throughput / m['procs_x1_thread']:.2f}x (target >= 0.90,"
                f" errors {vs[16].errors}); p50 at 1 = {vs[1].p(50) / m['latency_ms']:.2f}x of the forward pass"
                f" on a decoded image, {vs[1].p(50) / m['latency_with_decode_ms']:.2f}x with the decode"
                " (target <= 1.10)"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model_alone": alone,
                    "servers": {
                        n: {
                            sz: {
                                c: {
                                    "img_s": s.throughput,
                                    "p50": s.p(50),
                                    "p95": s.p(95),
                                    "p99": s.p(99),
                                    "errors": s.errors,
                                }
                                for c, s in bc.items()
                            }
                            for sz, bc in bs.items()
                        }
                        for n, bs in table.items()
                    },
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
