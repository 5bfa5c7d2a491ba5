"""``visionserve jobs ...`` against a real ``visionserve serve`` process (embedded runner), with a
signed webhook to a receiver started by the test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.jobs_support import (
    PLUGIN_MODEL,
    Cluster,
    Receiver,
    free_port,
    numbered_image,
    wait_for,
    write_plugin_model,
)

from visionserve.cli.main import main
from visionserve.jobs.webhooks import SIGNATURE_HEADER, verify

SECRET = "cli-test-secret"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    write_plugin_model(tmp_path / "models", tmp_path / "seen.log")
    env = {key: value for key, value in os.environ.items() if not key.startswith("VISIONSERVE_")}
    env |= {
        "VISIONSERVE_MODELS": str(tmp_path / "models"),
        "VISIONSERVE_DATA_DIR": str(tmp_path / "data"),
        "VISIONSERVE_WEBHOOK_SECRET": SECRET,
        "VISIONSERVE_WEBHOOK_HOSTS": "127.0.0.1",
        "VISIONSERVE_OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8",
        "VISIONSERVE_WEBHOOK_BACKOFF": "0.05",
    }
    cluster = Cluster(tmp_path, env)
    yield cluster.server(free_port())
    cluster.stop()


def jobs(server: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["jobs", "--server", server, *args])
    return result.exit_code, result.stdout, result.stderr


def test_submit_wait_status_list_results_cancel(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        (folder / f"p{i:02d}.png").write_bytes(numbered_image(i))
    with Receiver(statuses=[500]) as receiver:
        code, out, err = jobs(
            server,
            "submit",
            str(folder),
            "--model",
            PLUGIN_MODEL,
            "--crops",
            "--wait",
            "--interval",
            "0.05",
            "--webhook-url",
            f"{receiver.url}/hook",
        )
        assert code == 0, err
        job_id = out.split()[0]
        assert "succeeded  12/12 (done 12, failed 0)" in out
        assert "12 images" in err and "12/12" in err  # the progress bar
        code, out, _ = jobs(server, "status", job_id, "--json", "--wait")
        document = json.loads(out)
        assert [r["source"] for r in document["results"]] == [f"p{i:02d}.png" for i in range(12)]
        wait_for(lambda: json.loads(jobs(server, "status", job_id, "--json")[1])["webhook"]["state"] == "delivered")
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]  # refused once, then accepted
    assert all(verify(r.body, SECRET, r.headers[SIGNATURE_HEADER]) for r in receiver.received)

    code, out, _ = jobs(server, "list", "--json", "--state", "succeeded")
    assert code == 0 and [j["id"] for j in json.loads(out)["jobs"]] == [job_id]
    coco = tmp_path / "coco.json"
    code, _, _ = jobs(server, "results", job_id, "--format", "coco", "-o", str(coco))
    assert code == 0 and len(json.loads(coco.read_text())["annotations"]) == 24
    code, _, err = jobs(server, "cancel", job_id)
    assert code == 1 and "HTTP 409" in err and "succeeded to cancelled" in err
    code, _, err = jobs(server, "status", "0" * 32)
    assert code == 1 and "HTTP 404" in err


def test_errors_are_one_line_messages(server: str, tmp_path: Path) -> None:
    code, _, err = jobs(server, "submit")
    assert code == 2 and "give image files" in err
    image = tmp_path / "a.png"
    image.write_bytes(numbered_image(0))
    code, _, err = jobs(server, "submit", str(image), "--model", "missing")
    assert code == 1 and "HTTP 404: unknown model 'missing'" in err
    code, _, err = jobs("http://127.0.0.1:9", "list")
    assert code == 1 and "cannot reach http://127.0.0.1:9" in err
