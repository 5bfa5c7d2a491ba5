"""Schemathesis against a real server process, from the server's own OpenAPI document: no 5xx, and
statuses, content types, headers and bodies as documented. A small, seeded budget for CI;
``python -m benchmarks.fuzz_api`` runs the same checks for as long as one likes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from benchmarks.fuzz_api import schemathesis_command
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow

#: A crash of the Python that runs schemathesis (hypothesis describing a lambda with ast.parse), seen once
#: on a busy machine under CPython 3.11.7; it says nothing about the server.
INTERPRETER_BUG = "SystemError: AST constructor recursion depth mismatch"


def test_the_api_holds_up_to_schemathesis(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server()
    command = schemathesis_command(server.url, max_examples=4, max_time=40, seed=7, report=None)
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    if run.returncode != 0 and INTERPRETER_BUG in run.stdout and "failures" not in run.stdout[-6000:]:
        # The tool itself crashed in CPython 3.11's ast.parse (python/cpython#106905), not on an answer
        # of ours: one more run with the same seed.
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, f"{summary}\n--- server log ---\n{server.log()[-4000:]}"
    assert " passed" in summary and "failures" not in summary
