"""The built-in classifier and pose model at concurrency 1: a script, the same pipeline in-process,
and the server.

Three ways to get one answer for one JPEG, taking turns round by round so that a noisy machine
affects them alike:

* **script**: what a hand-written script does with the bare LiteRT interpreter: ``cv2.imdecode``
  (every pixel), resize (letterbox for MoveNet), ``set_tensor``, ``invoke``, read the output, take
  the top classes or the keypoints;
* **in-process**: visionserve's own path without HTTP (:class:`visionserve.bench.inprocess.InstancePool`:
  the JPEG decoded at reduced size when the model needs fewer pixels, the forward pass, the answer
  mapped back to the photo's pixels), the same code a server instance runs;
* **server**: ``POST /v1/models/{name}/predict`` with the same JPEG, one request at a time, through a
  real ``visionserve serve`` process on a loopback port;
* **HTTP floor**: the same upload to a bare ASGI app on uvicorn that only reads it and answers a
  fixed JSON (:mod:`benchmarks.baselines.bare_asgi`): what any Python server on this stack pays.

For each photo size it prints the median latency of each and two ratios: *server vs in-process* is
what the server itself costs (HTTP, parsing, queueing, JSON), and *floor* is the least it could
cost (the HTTP floor as a share of the in-process time); *server vs script* is what a user sees
when a script is replaced by the server (on large photos the reduced decode more than pays for the
server). CPU ms per image of the server process (read from ``/proc``) and of the in-process path
follow, which a busy machine inflates less than latency.

    python -m benchmarks.tasks [--rounds 6] [--seconds 2] [--sizes 640x480,1920x1080]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from benchmarks.common import jpeg, median_ms
from benchmarks.loadgen import run_load, upload
from benchmarks.server import SERVERS, running_process
from visionserve.bench.inprocess import InstancePool
from visionserve.bench.wire import BenchImage
from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME, classifier_spec, pose_spec
from visionserve.models.spec import ModelSpec

MODELS = {CLASSIFIER_NAME: classifier_spec, POSE_NAME: pose_spec}


class Alone:
    """The model run by hand on JPEG bytes, as a script without visionserve would."""

    def __init__(self, spec: ModelSpec) -> None:
        files, self.input, _ = spec.network
        self.interpreter = Interpreter(str(spec.path(files.model)), num_threads=os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        self.letterbox = spec.name == POSE_NAME

    def __call__(self, data: bytes) -> np.ndarray:
        image = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        side = self.input.width
        if self.letterbox:
            h, w = image.shape[:2]
            ratio = side / max(h, w)
            resized = cv2.resize(image, (round(w * ratio), round(h * ratio)))
            canvas = np.zeros((side, side, 3), np.uint8)
            canvas[: resized.shape[0], : resized.shape[1]] = resized
        else:
            canvas = cv2.resize(image, (side, side))
        detail_in = self.interpreter.get_input_details()[0]
        detail_out = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(detail_in["index"], canvas[None])
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(detail_out["index"])
        return np.argsort(-out.reshape(-1))[:5] if not self.letterbox else out


def time_alone(model: Callable[[bytes], object], data: bytes, seconds: float) -> tuple[list[float], float]:
    """Latencies, and CPU seconds per image (of this whole process), of ``model`` run back to back
    for ``seconds``."""
    samples = []
    deadline = time.perf_counter() + seconds
    cpu = time.process_time()
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        model(data)
        samples.append(time.perf_counter() - start)
    return samples, (time.process_time() - cpu) / max(1, len(samples))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(pool: InstancePool, image: BenchImage) -> Callable[[bytes], object]:
    return lambda _: pool.answers([image])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round and side")
    parser.add_argument("--sizes", default="640x480,1920x1080")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    command = [*SERVERS["visionserve"][0], "--preload", "all"]
    floor_command = [sys.executable, "-m", "benchmarks.baselines.bare_asgi", "--port", "{port}"]
    print(f"{args.rounds} rounds of {args.seconds:.0f} s per side, medians (ms per image)")
    print(
        "model               photo      script in-process  server  floor | server vs in-process  floor"
        "  vs script | CPU in-process  server"
    )
    with (
        running_process("visionserve", command, "/readyz") as (base, proc),
        running_process("bare ASGI", floor_command, "/health") as (floor_base, _),
    ):
        for name, spec_of in MODELS.items():
            spec = spec_of()
            script, pool = Alone(spec), InstancePool(spec, 1)
            try:
                for width, height in sizes:
                    data = jpeg(width, height)
                    image = BenchImage(f"{width}x{height}", data, width, height)
                    sides = Sides(script, in_process(pool, image), base, proc.pid, floor_base)
                    print(f"{name:18} {width:>4}x{height:<5} " + measure(sides, name, data, args))
            finally:
                pool.close()


@dataclass(frozen=True)
class Sides:
    script: Callable[[bytes], object]
    pipeline: Callable[[bytes], object]
    server: str
    server_pid: int
    floor: str


def measure(sides: Sides, name: str, data: bytes, args: argparse.Namespace) -> str:
    """One row: the four sides' medians over the rounds, the ratios and the CPU per image."""
    request = upload(f"/v1/models/{name}/predict", "image", data)
    for side in (sides.script, sides.pipeline):
        time_alone(side, data, 0.5)
    for base in (sides.server, sides.floor):
        run_load(base, request, 1, 0.5)  # warm-up
    script_ms, pipeline_ms, server_ms, floor_ms, pipeline_cpu, server_cpu = [], [], [], [], [], []
    for _ in range(args.rounds):
        samples, _ = time_alone(sides.script, data, args.seconds)
        script_ms.append(median_ms(samples))
        samples, cpu = time_alone(sides.pipeline, data, args.seconds)
        pipeline_ms.append(median_ms(samples))
        pipeline_cpu.append(cpu * 1000)
        before = cpu_seconds(sides.server_pid)
        stats = run_load(sides.server, request, 1, args.seconds)
        if stats.errors:
            raise RuntimeError(f"{stats.errors} errors from the server for {name}")
        server_ms.append(stats.p(50))
        server_cpu.append((cpu_seconds(sides.server_pid) - before) / max(1, stats.requests) * 1000)
        floor_ms.append(run_load(sides.floor, request, 1, args.seconds / 2).p(50))
    a, p, s, f = (statistics.median(v) for v in (script_ms, pipeline_ms, server_ms, floor_ms))
    pc, sc = statistics.median(pipeline_cpu), statistics.median(server_cpu)
    return (
        f"{a:7.2f} {p:10.2f} {s:7.2f} {f:6.2f} | {(s - p) / p * 100:+13.1f}% {f / p * 100:+6.1f}%"
        f" {(s - a) / a * 100:+9.1f}% | {pc:14.2f} {sc:7.2f}"
    )


if __name__ == "__main__":
    main()
