"""``visionserve bench --url`` against a real server process: the sweep, its files, every protocol,
the API key where each protocol's client puts it, and the wrong-answer check.

The server holds the default model (SSD MobileNet v2), the protocol tests' ``tiny-yolo`` (known
boxes, fast), a plugin that always gives the same answer (``steady``) and one that moves its box
on every third call (``flaky``, see ``flaky_plugin.py``). Steps are short (about 1 s): the figures
are not measured here, only that they are there and plausible.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.integration.conftest import ServerProcess, running_server, write_model, write_plugin_model
from tests.integration.protocol_servers import YOLO_MODEL, write_repository

from visionserve.bench.wire import WireProtocol
from visionserve.cli.main import main

pytestmark = pytest.mark.slow
API_KEY = "bench-test-key"
FLAKY_SOURCE = Path(__file__).with_name("flaky_plugin.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("bench-server")
    repository = write_repository(root / "models")
    write_plugin_model(repository, "steady", instances=1)
    (repository / "flaky").mkdir()
    shutil.copy(FLAKY_SOURCE, repository / "flaky" / FLAKY_SOURCE.name)
    flaky = {"name": "flaky", "backend": "plugin", "plugin": "flaky_plugin:Flaky", "labels": ["thing"]}
    write_model(repository / "flaky", {**flaky, "instances": 1, "options": {"wrong_every": 3}})
    args = ("--models", str(repository), "--api-keys", API_KEY, "--threads", "2")
    with running_server(args, log_dir=root) as process:
        yield process


def data_dir(server: ServerProcess) -> Path:
    """The folder the fixture built the server's repository in."""
    return server.log_path.parent


def bench(server: ServerProcess, tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """Run ``visionserve bench --url`` in this process; its stdout and JSON document."""
    out = tmp_path / "bench.json"
    base = ["bench", "--url", server.url, "--api-key", API_KEY, "--json", str(out), "--warmup", "0.2s"]
    result = CliRunner().invoke(main, [*base, *args])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out.read_text())


def test_sweep_prints_the_table_and_writes_json_and_csv_with_the_model_alone(
    server: ServerProcess, tmp_path: Path
) -> None:
    files = {"json": tmp_path / "sweep.json", "csv": tmp_path / "sweep.csv"}
    command = [sys.executable, "-m", "visionserve", "bench", "--url", server.url, "--api-key", API_KEY]
    command += ["--model", YOLO_MODEL, "--model-alone", "--models", str(data_dir(server) / "models")]
    command += ["--concurrency", "1,2", "--duration", "1.5s", "--warmup", "0.5s"]
    command += ["--json", str(files["json"]), "--csv", str(files["csv"])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["target", "conc", "batch", "img/s", "p50"]
    assert [line.split()[:4] for line in lines[1:5]] == [
        ["server", "native", "1", "1"],
        ["model", "alone", "1", "1"],
        ["server", "native", "2", "1"],
        ["model", "alone", "2", "1"],
    ]
    document = json.loads(files["json"].read_text())
    assert document["mode"] == "server" and document["protocol"] == "native"
    assert document["model"] == YOLO_MODEL and document["images"] == ["sample-astronaut.jpg", "sample-chelsea.jpg"]
    assert not any("differently" in note for note in document["notes"])  # the model alone agrees with the server
    steps = document["steps"]
    assert [(s["target"], s["concurrency"]) for s in steps] == [
        ("server native", 1),
        ("model alone", 1),
        ("server native", 2),
        ("model alone", 2),
    ]
    for step in steps:
        assert step["requests"] > 0 and step["errors"] == 0 and step["images_per_s"] > 0
        assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"] < 60_000
        assert 0 < step["cpu_cores"] < 64 and step["seconds"] == pytest.approx(1.5, abs=0.1)
    for server_step in steps[::2]:
        assert server_step["throughput_ratio"] > 0 and server_step["p50_ratio"] > 0
    rows = list(csv.DictReader(files["csv"].read_text().splitlines()))
    assert [r["target"] for r in rows] == [s["target"] for s in steps]
    assert [float(r["images_per_s"]) for r in rows] == [s["images_per_s"] for s in steps]


@pytest.mark.parametrize("protocol", list(WireProtocol))
def test_every_protocol_answers_right_under_load(server: ServerProcess, tmp_path: Path, protocol: WireProtocol) -> None:
    output, document = bench(
        server, tmp_path, "--protocol", protocol.value, "--model", YOLO_MODEL, "--concurrency", "2", "--duration", "1s"
    )
    assert f"server {protocol.value}" in output
    (step,) = document["steps"]
    assert document["protocol"] == protocol.value and document["model"] == YOLO_MODEL
    assert step["requests"] > 0 and step["errors"] == 0, step


def test_protocols_that_need_a_model_name_use_the_servers_default(server: ServerProcess, tmp_path: Path) -> None:
    # The default model (SSD MobileNet v2) is slow on a busy 2-core machine: a longer step.
    _, document = bench(server, tmp_path, "--protocol", "tfserving", "--concurrency", "1", "--duration", "3s")
    (step,) = document["steps"]
    assert document["model"] == "ssd-mobilenet-v2-coco" and step["requests"] > 0 and step["errors"] == 0


def test_a_fast_but_wrong_server_shows_errors(server: ServerProcess, tmp_path: Path) -> None:
    output, document = bench(server, tmp_path, "--model", "flaky", "--concurrency", "1,2", "--duration", "1s")
    for step in document["steps"]:
        assert step["requests"] > 1 and step["error_kinds"].get("wrong answer", 0) > 0
        assert step["errors"] < step["requests"]  # one answer in three is wrong (two if a reference was)
    assert "wrong answer" in output
    _, steady = bench(server, tmp_path, "--model", "steady", "--concurrency", "2", "--duration", "1s")
    assert steady["steps"][0]["requests"] > 1 and steady["steps"][0]["errors"] == 0


def test_a_refused_key_stops_before_the_load(server: ServerProcess) -> None:
    result = CliRunner().invoke(main, ["bench", "--url", server.url, "--duration", "1s"])
    assert result.exit_code == 1 and "refused the key" in result.output
