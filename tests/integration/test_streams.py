"""Live streams against a real server process: a generated video of a real photo moving across the
frame played as a stream, viewers, events, bad sources, reconnection, tokens, leaks and drain."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from tests.integration.conftest import ServerProcess, metric_sum, write_plugin_model
from tests.integration.streams_server import BLOB, Camera, mjpeg_parts, sse_events, wait_for, write_blob_model
from tests.streams_support import moving_frames, write_moving_video
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

FRAMES, FPS = 60, 15.0


@pytest.fixture
def video_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_moving_video(folder / "moving.mp4", frames=FRAMES, fps=FPS)
    (folder / "notes.mp4").write_text("this is not a video")
    (tmp_path / "secret.mp4").write_bytes((folder / "moving.mp4").read_bytes())
    return folder


@pytest.fixture
def server(start_server: Callable[..., ServerProcess], tmp_path: Path, video_dir: Path) -> ServerProcess:
    repository = tmp_path / "models"
    write_blob_model(repository)
    return start_server(
        "--models",
        str(repository),
        "--preload",
        BLOB,
        "--video-dir",
        str(video_dir),
        "--stream-url-hosts",
        "127.0.0.1",
        "--outbound-allow-networks",
        "127.0.0.1/32",
        "--stream-stall-timeout",
        "2",
    )


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/streams", json={"model": BLOB, **body})
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def stream(client: httpx.Client, stream_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/streams/{stream_id}")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def process_counts(pid: int) -> tuple[int, int]:
    """Open file descriptors and threads of process ``pid``."""
    threads = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Threads:"))
    return len(os.listdir(f"/proc/{pid}/fd")), int(threads.split()[1])


@pytest.mark.slow
def test_two_viewers_and_events_share_one_inference_per_frame(server: ServerProcess) -> None:
    client = server.client()
    created = create(client, source="moving.mp4")
    stream_id = created["id"]
    assert created["state"] in {"starting", "running"} and created["source"] == "moving.mp4"
    parts: dict[str, list[bytes]] = {"a": [], "b": []}
    events: list[dict[str, Any]] = []

    def watch(name: str) -> None:
        with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/mjpeg", timeout=30) as response:
            assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
            parts[name].extend(mjpeg_parts(response))

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/events", timeout=30) as response:
            events.extend(sse_events(response))

    threads = [threading.Thread(target=watch, args=(n,)) for n in parts] + [threading.Thread(target=listen)]
    for thread in threads:
        thread.start()
    wait_for(lambda: stream(client, stream_id)["stats"]["viewers"] == 2, what="two viewers")
    for thread in threads:
        thread.join(60)
    final = stream(client, stream_id)
    assert final["state"] == "ended"
    stats = final["stats"]
    assert stats["inferences"] == stats["frames_processed"] > 0
    assert stats["frames_read"] == FRAMES == stats["frames_processed"] + stats["frames_skipped"]
    for name in parts:
        assert len(parts[name]) >= stats["frames_processed"] // 2, (name, len(parts[name]), stats)
        for jpeg in parts[name]:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape == (240, 320, 3)
    with_object = [event for event in events if event["detections"]]
    assert len(with_object) >= 0.9 * len(events) and len(events) >= stats["frames_processed"] // 2
    xs = [event["detections"][0]["box"]["x1"] for event in with_object]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 150  # the photo moves left to right
    assert all(event["stream"] == stream_id and event["width"] == 320 for event in events)
    metrics = client.get("/metrics").text
    assert metric_sum(metrics, "visionserve_stream_inferences_total", stream=stream_id) == stats["inferences"]
    assert metric_sum(metrics, "visionserve_images_total", model=BLOB) >= stats["inferences"]
    assert "/v1/streams/{stream_id}/mjpeg" not in metrics.split("visionserve_request_duration_seconds_count")[-1]
    latest = client.get(f"/v1/streams/{stream_id}/latest.jpg", params={"height": 120})
    assert latest.status_code == 200 and latest.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(latest.content, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)


def test_bad_sources_are_clear_4xx_before_a_stream_exists(server: ServerProcess) -> None:
    client = server.client()
    cases = [
        ({"source": "missing.mp4"}, 422, "source_not_found"),
        ({"source": "../secret.mp4"}, 422, "source_refused"),
        ({"source": "/etc/passwd"}, 422, "source_refused"),
        ({"source": "notes.mp4"}, 422, "bad_source"),
        ({"source": "http://camera.example/live.mjpg"}, 422, "source_refused"),
        ({"source": "rtsp://127.0.0.1:9/x", "bogus": 1}, 422, "invalid_parameter"),
        ({"source": "device:0"}, 422, "source_refused"),
        ({"source": "gopher://x/y"}, 422, "bad_source"),
        ({"source": "moving.mp4", "classes": ["unicorn"]}, 422, "invalid_parameter"),
        ({"source": "moving.mp4", "model": "nope"}, 404, "model_not_found"),
        ({"source": "moving.mp4", "conf": 2}, 422, "invalid_parameter"),
    ]
    for body, status, code in cases:
        response = client.post("/v1/streams", json={"model": BLOB, **body})
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (body, response.text)
    assert client.get("/v1/streams").json() == {"streams": []}
    for method, path in [("GET", "/v1/streams/nope"), ("DELETE", "/v1/streams/nope"), ("GET", "/v1/streams/x/mjpeg")]:
        assert client.request(method, path).status_code == 404


@pytest.mark.slow
def test_a_camera_cut_mid_stream_reconnects_and_nothing_leaks(server: ServerProcess) -> None:
    client = server.client()
    camera = Camera()
    try:
        pid = server.process.pid
        warm_up(server, client)  # fills the worker thread pools, which outlive streams by design
        before = process_counts(pid)
        stream_id = create(client, source=camera.url)["id"]
        wait_for(lambda: stream(client, stream_id)["state"] == "running", what="running")
        wait_for(lambda: stream(client, stream_id)["stats"]["frames_processed"] > 10, what="frames")
        camera.cut()
        reconnecting = wait_for(lambda: stream(client, stream_id)["state"] == "reconnecting", what="reconnecting")
        assert reconnecting
        assert stream(client, stream_id)["last_error"]
        camera.restore()
        processed = stream(client, stream_id)["stats"]["frames_processed"]
        wait_for(lambda: stream(client, stream_id)["state"] == "running", what="running again")
        wait_for(lambda: stream(client, stream_id)["stats"]["frames_processed"] > processed + 10, what="new frames")
        assert stream(client, stream_id)["stats"]["reconnects"] >= 1
        second = create(client, source="moving.mp4", loop=True)["id"]
        with httpx.stream("GET", f"{server.url}/v1/streams/{second}/mjpeg", timeout=30) as response:
            assert next(mjpeg_parts(response))[:2] == b"\xff\xd8"
        for sid in (stream_id, second):
            assert client.delete(f"/v1/streams/{sid}").status_code == 204
        assert client.get("/v1/streams").json() == {"streams": []}
        # Descriptors (captures, sockets) must come back exactly. Threads may exceed the baseline by one:
        # on a loaded machine the default executor can start one more worker (kept for the server's life
        # by design); a reader that outlived its stream would leak one thread for each of the two streams.
        fds_before, threads_before = before
        wait_for(
            lambda: process_counts(pid)[0] <= fds_before and process_counts(pid)[1] <= threads_before + 1,
            what=f"descriptors back to {fds_before} and threads to at most {threads_before + 1}",
        )
    finally:
        camera.close()


def warm_up(server: ServerProcess, client: httpx.Client) -> None:
    """Run two streams at once, each with a viewer, to their end, so that the worker threads of the
    default executor (started on demand, kept for the server's life by design: they draw and encode
    frames) exist for two concurrent streams before the counts are taken."""
    ids = [create(client, source="moving.mp4")["id"] for _ in range(2)]

    def watch(stream_id: str) -> None:
        with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/mjpeg", timeout=30) as response:
            for _ in mjpeg_parts(response):
                pass

    viewers = [threading.Thread(target=watch, args=(stream_id,)) for stream_id in ids]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(60)
    for stream_id in ids:
        assert client.delete(f"/v1/streams/{stream_id}").status_code == 204


def test_pause_resume_and_the_stream_document(server: ServerProcess) -> None:
    client = server.client()
    created = create(client, source="moving.mp4", loop=True, max_fps=5, conf=0.5, classes=["person"])
    stream_id = created["id"]
    assert set(created) >= {"id", "state", "source", "model", "options", "stats", "urls", "last_error"}
    assert created["options"]["max_fps"] == 5 and created["model"] == BLOB
    wait_for(lambda: stream(client, stream_id)["stats"]["frames_processed"] > 2, what="frames")
    assert client.post(f"/v1/streams/{stream_id}/pause").json()["state"] == "paused"
    processed = stream(client, stream_id)["stats"]["frames_processed"]
    time.sleep(1.0)
    assert stream(client, stream_id)["stats"]["frames_processed"] <= processed + 1
    assert client.post(f"/v1/streams/{stream_id}/resume").json()["state"] == "running"
    wait_for(lambda: stream(client, stream_id)["stats"]["frames_processed"] > processed + 2, what="resumed")
    assert stream(client, stream_id)["stats"]["processed_fps"] <= 6.0
    assert [s["id"] for s in client.get("/v1/streams").json()["streams"]] == [stream_id]


def test_with_api_keys_browsers_watch_with_a_signed_token_for_that_stream_only(
    start_server: Callable[..., ServerProcess], tmp_path: Path, video_dir: Path
) -> None:
    repository = tmp_path / "models"
    write_blob_model(repository)
    server = start_server("--models", str(repository), "--video-dir", str(video_dir), "--api-keys", "k1")
    client = server.client(headers={"X-API-Key": "k1"})
    stream_id = create(client, source="moving.mp4", loop=True)["id"]
    other = create(client, source="moving.mp4", loop=True)["id"]
    anonymous = server.client()
    assert anonymous.get(f"/v1/streams/{stream_id}/latest.jpg").status_code == 401
    assert anonymous.post(f"/v1/streams/{stream_id}/token").status_code == 401
    issued = client.post(f"/v1/streams/{stream_id}/token").json()
    assert issued["expires_at"] > time.time() + 200
    token = {"token": issued["token"]}
    wait_for(lambda: anonymous.get(f"/v1/streams/{stream_id}/latest.jpg", params=token).status_code == 200)
    with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/events", params=token, timeout=30) as response:
        assert response.status_code == 200 and next(sse_events(response))["stream"] == stream_id
    assert anonymous.get(f"/v1/streams/{other}/latest.jpg", params=token).status_code == 401
    assert anonymous.get(f"/v1/streams/{stream_id}", params=token).status_code == 401
    assert anonymous.delete(f"/v1/streams/{stream_id}", params=token).status_code == 401
    forged = {"token": issued["token"][:-2] + ("AA" if not issued["token"].endswith("AA") else "BB")}
    assert anonymous.get(f"/v1/streams/{stream_id}/latest.jpg", params=forged).status_code == 401


@pytest.mark.slow
def test_open_viewers_do_not_hold_up_graceful_shutdown(server: ServerProcess) -> None:
    client = server.client()
    stream_id = create(client, source="moving.mp4", loop=True)["id"]
    ended = threading.Event()

    def watch() -> None:
        with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/mjpeg", timeout=60) as response:
            for _ in mjpeg_parts(response):
                pass
        ended.set()

    viewer = threading.Thread(target=watch)
    viewer.start()
    wait_for(lambda: stream(client, stream_id)["stats"]["viewers"] == 1, what="viewer")
    started = time.monotonic()
    assert server.stop(timeout=20) == 0
    assert time.monotonic() - started < 10
    viewer.join(10)
    assert ended.is_set()


def test_the_websocket_answers_detections_for_frames_and_drops_old_ones_while_busy(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    repository = tmp_path / "models"
    write_blob_model(repository)
    write_plugin_model(repository, "slow", delay_s=0.3, instances=1)
    server = start_server("--models", str(repository), "--preload", f"{BLOB},slow")
    frames = [cv2.imencode(".jpg", image)[1].tobytes() for image in moving_frames(10)]
    ws_url = server.url.replace("http://", "ws://") + "/v1/detect/ws"
    with connect(f"{ws_url}?model={BLOB}") as socket:
        for i in (0, 5, 9):
            socket.send(frames[i])
            answer = json.loads(socket.recv(timeout=10))
            assert answer["frame"] == [0, 5, 9].index(i) and answer["skipped"] == 0
            assert answer["detections"][0]["label"] == "person" and answer["width"] == 320
        socket.send(b"not an image")
        assert json.loads(socket.recv(timeout=10))["error"]["code"] == "undecodable_image"
    with connect(f"{ws_url}?model=slow") as socket:
        for jpeg in frames:
            socket.send(jpeg)
        answers = []
        while not answers or answers[-1]["frame"] != len(frames) - 1:
            answers.append(json.loads(socket.recv(timeout=10)))
    assert len(answers) < len(frames) and answers[-1]["skipped"] == len(frames) - len(answers)
    assert [a["frame"] for a in answers] == sorted(a["frame"] for a in answers)


def test_with_api_keys_a_browser_opens_the_websocket_with_a_signed_token(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    repository = tmp_path / "models"
    write_blob_model(repository)
    server = start_server("--models", str(repository), "--preload", BLOB, "--api-keys", "k1")
    client = server.client(headers={"X-API-Key": "k1"})
    anonymous = server.client()
    assert anonymous.post("/v1/detect/ws/token").status_code == 401
    issued = client.post("/v1/detect/ws/token").json()
    assert issued["expires_at"] > time.time() + 200 and issued["query"] == f"token={issued['token']}"
    ws_url = server.url.replace("http://", "ws://") + f"/v1/detect/ws?model={BLOB}"
    with pytest.raises(InvalidStatus):
        connect(ws_url).close()
    forged = issued["token"][:-2] + ("AA" if not issued["token"].endswith("AA") else "BB")
    with pytest.raises(InvalidStatus):
        connect(f"{ws_url}&token={forged}").close()
    frame = cv2.imencode(".jpg", moving_frames(1)[0])[1].tobytes()
    with connect(f"{ws_url}&{issued['query']}") as socket:
        socket.send(frame)
        assert json.loads(socket.recv(timeout=10))["detections"][0]["label"] == "person"
