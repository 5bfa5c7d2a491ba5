"""Live video, the issue's "Done when": visionserve's streams beside the seed pattern, in the same run.

The seed pattern (:mod:`benchmarks.baselines.flask_stream`) is a Flask generator per viewer that opens its
own ``cv2.VideoCapture`` and runs the model on every frame. Both play generated 640x480 videos at 25 fps
(the astronaut photo moving across a grey frame, looped) to MJPEG viewers that read every byte, for 1, 2
and 4 viewers of one source and 1 to 4 sources of one viewer each. Per cell: JPEG frames per second each
viewer got, forward passes per source frame ("pass/src") and per JPEG frame a viewer got ("pass/out"),
the server process's CPU time per wall second, and the latency from the frame read to its JPEG out
(visionserve: the stream's own stats over its recent frames; seed: every frame of the window). Then:
- "long": 4 sources (more than the model keeps up with on 2 cores), latency p95 in each 10 s window;
- "motion": one stream on a mostly static video (the photo moves in 1 s of every 10), with and without
  ``motion: true``: CPU per stream.

    python -m benchmarks.streams [--seconds 10] [--long 60]     # needs scripts/setup.sh bench
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from skimage import data

from benchmarks.server import running_process

FPS, WIDTH, HEIGHT, SIZE = 25.0, 640, 480, 200


def write_videos(folder: Path, frames: int = 250) -> None:
    """``cam0..3.mp4``: the photo crossing the frame every 10 s; ``static.mp4``: it stands still but for
    one second of every ten."""
    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (SIZE, SIZE))
    span = WIDTH - SIZE

    def frame(x: int) -> np.ndarray:
        image = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
        image[140 : 140 + SIZE, x : x + SIZE] = photo
        return image

    moving = [frame(round(i * span / (frames - 1))) for i in range(frames)]
    still = [frame(round(max(0, i - frames + FPS) * span / FPS)) for i in range(frames)]
    for name, images in [*((f"cam{k}.mp4", moving) for k in range(4)), ("static.mp4", still)]:
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
        for image in images:
            writer.write(image)
        writer.release()


class Viewer(threading.Thread):
    """Reads an MJPEG URL to the end (or :meth:`stop`), counting its parts."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.parts, self._stop_event = url, 0, threading.Event()

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", self.url, timeout=30) as response:
            tail = b""
            for chunk in response.iter_bytes():
                data_ = tail + chunk
                self.parts += data_.count(b"--frame")
                tail = data_[-8:]
                if self._stop_event.is_set():
                    return

    def stop(self) -> None:
        self._stop_event.set()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def watching(base: str, urls: Sequence[str], warmup: float = 4.0) -> Iterator[list[Viewer]]:
    """Viewers of ``urls`` reading for ``warmup`` seconds before the block, stopped after it."""
    viewers = [Viewer(base + url) for url in urls]
    for viewer in viewers:
        viewer.start()
    time.sleep(warmup)
    try:
        yield viewers
    finally:
        for viewer in viewers:
            viewer.stop()


def windows(viewers: list[Viewer], pid: int, seconds: Sequence[float], sample: Any) -> list[dict[str, Any]]:
    """For each window of ``seconds``: viewer fps, CPU per wall second and ``sample(before, after, wall)``
    where ``before``/``after`` are ``sample(None, None, 0)`` at the window's ends."""
    out = []
    for length in seconds:
        before, parts, cpu0, t0 = sample(None, None, 0), [v.parts for v in viewers], cpu_seconds(pid), time.monotonic()
        time.sleep(length)
        after = sample(None, None, 0)
        wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
        got = [v.parts - p for v, p in zip(viewers, parts, strict=True)]
        result = {"fps": float(np.mean(got)) / wall, "cpu": cpu / wall, **sample(before, after, wall)}
        result["per_out"] = result.pop("inferences") / max(1, sum(got))
        out.append(result)
    return out


def visionserve_cell(
    base: str, pid: int, layout: Sequence[int], seconds: Sequence[float], source: str = "", **options: Any
) -> list[dict[str, Any]]:
    """Streams of ``cam<k>.mp4`` (or ``source``) with ``layout[k]`` viewers each, measured per window."""
    client = httpx.Client(base_url=base, timeout=30)
    ids = []
    for k, _ in enumerate(layout):
        created = client.post("/v1/streams", json={"source": source or f"cam{k}.mp4", "loop": True, **options})
        created.raise_for_status()
        ids.append(created.json()["id"])

    def sample(before: Any, after: Any, wall: float) -> Any:
        if before is None:
            return [client.get(f"/v1/streams/{i}").json()["stats"] for i in ids]
        read = sum(a["frames_read"] - b["frames_read"] for a, b in zip(after, before, strict=True))
        passes = sum(a["inferences"] - b["inferences"] for a, b in zip(after, before, strict=True))
        return {
            "inferences": passes,
            "passes": passes / max(1, read),
            "p50": float(np.mean([a["latency_ms"]["p50"] for a in after])),
            "p95": float(max(a["latency_ms"]["p95"] for a in after)),
        }

    urls = [f"/v1/streams/{i}/mjpeg" for i, n in zip(ids, layout, strict=True) for _ in range(n)]
    try:
        with watching(base, urls) as viewers:
            return windows(viewers, pid, seconds, sample)
    finally:
        for i in ids:
            client.delete(f"/v1/streams/{i}")


def seed_cell(base: str, pid: int, layout: Sequence[int], seconds: Sequence[float]) -> list[dict[str, Any]]:
    """The seed server's viewers of ``cam<k>.mp4`` (``layout[k]`` each), measured per window."""

    def sample(before: Any, after: Any, wall: float) -> Any:
        if before is None:
            return {"at": time.time(), **httpx.get(f"{base}/stats", params={"since": time.time()}).json()}
        recent = httpx.get(f"{base}/stats", params={"since": before["at"]}).json()["samples"]
        latencies = np.asarray([s[1] for s in recent if s[0] <= after["at"]]) * 1000.0
        return {
            "inferences": after["inferences"] - before["inferences"],
            "passes": (after["inferences"] - before["inferences"]) / (FPS * wall * len(layout)),
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
        }

    urls = [f"/video_feed/cam{k}.mp4" for k, n in enumerate(layout) for _ in range(n)]
    with watching(base, urls) as viewers:
        return windows(viewers, pid, seconds, sample)


LAYOUTS = {"1 source, 1 viewer": [1], "1 source, 2 viewers": [2], "1 source, 4 viewers": [4]}
LAYOUTS |= {f"{n} sources, 1 viewer each": [1] * n for n in (2, 3, 4)}
_COLUMNS = ("fps/view", "pass/src", "pass/out", "cpu", "p50 ms", "p95 ms")
HEADER = f"{'server':12} {'cell':26} " + " ".join(f"{c:>8}" for c in _COLUMNS)


def _row(name: str, cell: str, r: dict[str, Any]) -> str:
    numbers = f"{r['fps']:8.1f} {r['passes']:8.2f} {r['per_out']:8.2f} {r['cpu']:8.2f} {r['p50']:8.0f} {r['p95']:8.0f}"
    return f"{name:12} {cell:26} {numbers}"


def servers(folder: Path) -> dict[str, list[str]]:
    return {
        "visionserve": [
            sys.executable,
            "-m",
            "visionserve",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--video-dir",
            str(folder),
        ],
        "seed": [
            sys.executable,
            "-m",
            "benchmarks.baselines.flask_stream",
            "--port",
            "{port}",
            "--video-dir",
            str(folder),
        ],
    }


def run_server(name: str, command: list[str], seconds: float, long: float) -> list[str]:
    cell = visionserve_cell if name == "visionserve" else seed_cell
    rows = []
    with running_process(name, command, "/health" if name == "seed" else "/readyz") as (base, proc):
        for label, layout in LAYOUTS.items():
            rows.append(_row(name, label, cell(base, proc.pid, layout, [seconds])[0]))
        if long:
            for k, r in enumerate(cell(base, proc.pid, [1] * 4, [10.0] * int(long // 10))):
                rows.append(_row(name, f"long, 4 sources, {10 * k}-{10 * k + 10}s", r))
        if name == "visionserve":
            for motion in (False, True):
                r = visionserve_cell(base, proc.pid, [1], [seconds], source="static.mp4", motion=motion)[0]
                rows.append(_row(name, f"static scene, motion {'on' if motion else 'off'}", r))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per cell (after a 4 s warm-up)")
    parser.add_argument("--long", type=float, default=60.0, help="seconds of the long run (0: none)")
    parser.add_argument("--only", default="visionserve,seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_videos(folder)
        rows = []
        for name, command in servers(folder).items():
            if name in args.only.split(","):
                rows += run_server(name, command, args.seconds, args.long)
    print(f"{os.cpu_count()} cores; {WIDTH}x{HEIGHT} at {FPS:.0f} fps; {args.seconds:.0f} s per cell; cpu = CPU s/s")
    print(HEADER)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
