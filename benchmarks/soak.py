"""Load and soak: saturate a fresh server for ``--minutes`` with valid, invalid and oversized requests,
concurrent jobs, clients that trickle their bodies and clients that never read their answers.

It prints (and writes as JSON with ``--out``): throughput and p50/p99 of the valid requests, the
count of every outcome by kind (anything unexpected is listed apart), answers that differ from the
same image sent alone, the slow clients' fate, and the server's RSS every ``--sample`` seconds
(start, middle and end, after a warm-up, must stay within 10%). Loopback only; every loop stops at
the deadline. The server runs with a 15 s body timeout and a 5 s header timeout so that slow clients
meet them many times in a run.

    python -m benchmarks.soak [--minutes 10] [--clients 6] [--trickle 16] [--deaf 4] [--out soak.json]
                              [--server-arg '--malloc-arena-max 0']   (glibc's default arenas, as before)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
from skimage import data

from benchmarks.common import percentile_ms
from benchmarks.server import running_process
from benchmarks.soak_traffic import (
    Tally,
    Workload,
    comparable,
    deaf_client,
    job_client,
    job_detections,
    mixed_client,
    submit_job,
    trickle_client,
)

MAX_BODY_BYTES = 2_000_000
SERVER_ARGS = ["--max-body-bytes", str(MAX_BODY_BYTES), "--body-timeout", "15", "--header-timeout", "5"]
WARM_UP_S = 30.0


def photos() -> dict[str, bytes]:
    """Real photos of several sizes and formats, as clients send them."""
    images = {
        "astronaut-512": (data.astronaut(), ".jpg"),
        "chelsea-451": (data.chelsea(), ".png"),
        "coffee-600": (data.coffee(), ".jpg"),
        "astronaut-1920": (cv2.resize(data.astronaut(), (1920, 1080)), ".jpg"),
    }
    out = {}
    for name, (rgb, ext) in images.items():
        ok, buffer = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        out[name] = buffer.tobytes()
    return out


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children (the server's worker processes, if any)."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            status = Path(f"/proc/{candidate}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total / 1024


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def references(url: str, images: dict[str, bytes], job_images: tuple[str, ...]) -> Workload:
    """Each image's answer sent alone, and a job's results run alone, before any load."""
    with httpx.Client(base_url=url, timeout=60) as client:
        alone = {}
        for name, image in images.items():
            answer = client.post("/v1/detect", files={"image": (f"{name}.img", image)})
            answer.raise_for_status()
            alone[name] = comparable(answer.json())
        workload = Workload(url, images, alone, MAX_BODY_BYTES, job_images, [])
        job = job_detections(client, submit_job(client, workload), time.monotonic() + 120)
        if job is None:
            raise RuntimeError("the reference job did not succeed")
    return Workload(url, images, alone, MAX_BODY_BYTES, job_images, job)


def sample_rss(pid: int, stop: threading.Event, every: float, out: list[tuple[float, float]]) -> None:
    started = time.monotonic()
    while not stop.wait(every):
        out.append((round(time.monotonic() - started, 1), round(rss_mib(pid), 1)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "visionserve", "serve", "--host", "127.0.0.1", "--port", "{port}", *SERVER_ARGS]
    command += [part for flag in args.server_arg for part in flag.split(maxsplit=1)]
    os.environ["VISIONSERVE_DATA_DIR"] = tempfile.mkdtemp(prefix="visionserve-soak-")
    with running_process("visionserve", command, "/readyz") as (url, process):
        images = photos()
        workload = references(url, images, ("astronaut-512", "chelsea-451", "coffee-600"))
        tally, rss = Tally(), [(0.0, round(rss_mib(process.pid), 1))]
        deadline = time.monotonic() + args.minutes * 60
        stop = threading.Event()
        threads = [threading.Thread(target=sample_rss, args=(process.pid, stop, args.sample, rss), daemon=True)]
        threads += [
            threading.Thread(target=mixed_client, args=(workload, tally, deadline, seed), daemon=True)
            for seed in range(args.clients)
        ]
        threads += [threading.Thread(target=job_client, args=(workload, tally, deadline), daemon=True)]
        threads += [
            threading.Thread(target=trickle_client, args=(workload, tally, deadline), daemon=True)
            for _ in range(args.trickle)
        ]
        threads += [
            threading.Thread(target=deaf_client, args=(workload, tally, deadline), daemon=True)
            for _ in range(args.deaf)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join(max(0.0, deadline - time.monotonic()) + 180)
        stop.set()
        seconds = time.monotonic() - started
        after = httpx.get(url + "/readyz", timeout=10).status_code
    return report(tally, rss, seconds, after, args)


def report(tally: Tally, rss: list[tuple[float, float]], seconds: float, ready: int, args: Any) -> dict[str, Any]:
    valid = tally.outcomes.get("valid: 200", 0)
    steady = [mib for at, mib in rss if at >= WARM_UP_S] or [mib for _, mib in rss]
    middle = steady[len(steady) // 2]
    expected = ("200", "400", "413", "415", "422", "408", "held and dropped", "same results")
    unexpected = {k: v for k, v in tally.outcomes.items() if not k.endswith(expected)}
    return {
        "minutes": args.minutes,
        "server_args": args.server_arg,
        "clients": {"mixed": args.clients, "jobs": 1, "trickle": args.trickle, "deaf": args.deaf},
        "seconds": round(seconds, 1),
        "valid_per_s": round(valid / seconds, 2),
        "valid_p50_ms": round(percentile_ms(tally.latencies, 50), 1),
        "valid_p99_ms": round(percentile_ms(tally.latencies, 99), 1),
        "trickle_answered_after_s": round(max(tally.trickle_s), 1) if tally.trickle_s else None,
        "outcomes": dict(sorted(tally.outcomes.items())),
        "unexpected": unexpected,
        "mismatches": tally.mismatches,
        "rss_mib": {"start": steady[0], "middle": middle, "end": steady[-1], "samples": rss},
        "rss_flat_within_10pct": max(steady) <= 1.1 * steady[0] and min(steady) >= 0.9 * steady[0],
        "ready_after": ready,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=6, help="threads sending the request mix")
    parser.add_argument("--trickle", type=int, default=16, help="clients sending one byte a second")
    parser.add_argument("--deaf", type=int, default=4, help="clients that never read their answers")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--out", type=Path, help="also write the report here as JSON")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an extra server flag with its value, e.g. '--malloc-arena-max 0' (repeatable)",
    )
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = not result["unexpected"] and not result["mismatches"] and result["rss_flat_within_10pct"]
    sys.exit(0 if ok and result["ready_after"] == 200 else 1)


if __name__ == "__main__":
    main()
