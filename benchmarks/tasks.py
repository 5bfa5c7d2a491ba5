"""The built-in classifier and pose model: the model alone against the server at concurrency 1.

"Model alone" is what a hand-written script does with the bare LiteRT interpreter: ``cv2.imdecode``,
resize (letterbox for MoveNet), ``set_tensor``, ``invoke``, read the output, take the top class or the
keypoints. "Server" is ``POST /v1/models/{name}/predict`` with the same JPEG, one request at a time,
through a real ``visionserve serve`` process on a loopback port. Rounds alternate between the two so
that a noisy machine affects both alike; prints median latency and the server's overhead as a ratio,
and the CPU time per image of each (the server process's own, read from ``/proc``), which a busy
machine does not inflate the way it inflates latency.

    python -m benchmarks.tasks [--rounds 8] [--seconds 3] [--size 640x480]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from benchmarks.common import jpeg, median_ms
from benchmarks.loadgen import run_load, upload
from benchmarks.server import SERVERS, running_process
from visionserve.models.builtin import CLASSIFIER_NAME, POSE_NAME, classifier_spec, pose_spec
from visionserve.models.spec import ModelSpec

MODELS = {CLASSIFIER_NAME: classifier_spec, POSE_NAME: pose_spec}


class Alone:
    """The model run by hand on JPEG bytes, as a script without visionserve would."""

    def __init__(self, spec: ModelSpec) -> None:
        files, self.input, _ = spec.network
        self.interpreter = Interpreter(str(spec.path(files.model)), num_threads=2)
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


def time_alone(model: Alone, data: bytes, seconds: float) -> tuple[list[float], float]:
    """Latencies, and CPU seconds per image, of ``model`` run back to back for ``seconds``."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per round and side")
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    data = jpeg(width, height)
    command = [*SERVERS["visionserve"][0], "--preload", "all"]
    print(f"{args.size} JPEG, {args.rounds} rounds of {args.seconds:.0f} s per side, medians")
    print("model               alone ms  server ms  overhead | alone CPU ms  server CPU ms  overhead")
    with running_process("visionserve", command, "/readyz") as (base, proc):
        for name, spec in MODELS.items():
            alone = Alone(spec())
            request = upload(f"/v1/models/{name}/predict", "image", data)
            time_alone(alone, data, 1.0)
            run_load(base, request, 1, 1.0)  # warm-up
            alone_ms, server_ms, alone_cpu, server_cpu = [], [], [], []
            for _ in range(args.rounds):
                samples, cpu = time_alone(alone, data, args.seconds)
                alone_ms.append(median_ms(samples))
                alone_cpu.append(cpu * 1000)
                before = cpu_seconds(proc.pid)
                stats = run_load(base, request, 1, args.seconds)
                if stats.errors:
                    raise RuntimeError(f"{stats.errors} errors from the server for {name}")
                server_ms.append(stats.p(50))
                server_cpu.append((cpu_seconds(proc.pid) - before) / max(1, stats.requests) * 1000)
            a, s = statistics.median(alone_ms), statistics.median(server_ms)
            ac, sc = statistics.median(alone_cpu), statistics.median(server_cpu)
            print(
                f"{name:18} {a:9.2f} {s:10.2f} {(s - a) / a * 100:+8.1f}% |"
                f" {ac:12.2f} {sc:14.2f} {(sc - ac) / ac * 100:+8.1f}%"
            )


if __name__ == "__main__":
    main()
