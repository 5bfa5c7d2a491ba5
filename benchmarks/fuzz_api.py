"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document, with schemathesis.

Starts ``visionserve serve`` on a free loopback port (or uses ``--url``, which must be loopback), then
runs ``schemathesis run`` on ``/openapi.json`` with the checks that matter here: no 5xx, statuses,
content types, headers and bodies as documented. Operations that unload models are left out (they
make every later request a deliberate 503), and so are the endless stream responses (MJPEG, SSE).
Exits with schemathesis's status (0: nothing found).

    python -m benchmarks.fuzz_api [--max-examples 50] [--max-time 600] [--seed 1] [--report DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.server import running_process

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
EXCLUDED = r"(/unload$|^/model/(remove|clear)$|/mjpeg$|/events$)"


def schemathesis_command(url: str, max_examples: int, max_time: int, seed: int, report: Path | None) -> list[str]:
    """The ``schemathesis run`` command line for the server at ``url``."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        f"--max-examples={max_examples}",
        f"--max-time={max_time}",
        f"--seed={seed}",
        f"--checks={CHECKS}",
        f"--exclude-path-regex={EXCLUDED}",
        "--workers=2",
        "--request-timeout=30",
        "--generation-database=none",
        "--no-color",
    ]
    if report is not None:
        command += ["--report=junit", f"--report-dir={report}"]
    return command


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    """``url`` itself, or a fresh server on the built-in models with its own data folder."""
    if url is not None:
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}:
            raise SystemExit("fuzz only loopback servers")
        yield url.rstrip("/")
        return
    data = tempfile.mkdtemp(prefix="visionserve-fuzz-")
    command = [sys.executable, "-m", "visionserve", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    os.environ["VISIONSERVE_DATA_DIR"] = data
    with running_process("visionserve", command, "/readyz") as (base, _):
        yield base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running loopback server (default: start one)")
    parser.add_argument("--max-examples", type=int, default=50, help="test cases per operation and phase")
    parser.add_argument("--max-time", type=int, default=600, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, help="folder for a JUnit report")
    args = parser.parse_args()
    with server(args.url) as url:
        command = schemathesis_command(url, args.max_examples, args.max_time, args.seed, args.report)
        sys.exit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    main()
