"""Tracking, line and zone counting and motion gating through a real server process: a generated
video of a real photo moving left to right across the frame, played as a stream and read as events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.conftest import ServerProcess
from tests.integration.streams_server import BLOB, sse_events, wait_for, write_blob_model
from tests.streams_support import moving_frames, write_moving_video, write_video

FRAMES, FPS = 60, 15.0
#: Drawn bottom to top: the photo moving right crosses it from its left to its right, which is "in".
LINE = {"name": "middle", "start": [160, 240], "end": [160, 0]}
ZONE = {"name": "right", "polygon": [[200, 0], [320, 0], [320, 240], [200, 240]]}


@pytest.fixture
def server(start_server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_moving_video(videos / "moving.mp4", frames=FRAMES, fps=FPS)
    write_video(videos / "static.mp4", moving_frames(1) * FRAMES, FPS)
    repository = tmp_path / "models"
    write_blob_model(repository)
    return start_server("--models", str(repository), "--preload", BLOB, "--video-dir", str(videos))


def play(server: ServerProcess, **body: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every event of a stream of ``body`` played to its end, and its final document."""
    client = server.client()
    created = client.post("/v1/streams", json={"model": BLOB, **body})
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/v1/streams/{stream_id}/events", timeout=30) as response:
        events = list(sse_events(response))
    wait_for(lambda: client.get(f"/v1/streams/{stream_id}").json()["state"] == "ended", what="ended")
    document: dict[str, Any] = client.get(f"/v1/streams/{stream_id}").json()
    return events, document


@pytest.mark.slow
def test_the_moving_photo_keeps_one_track_id_and_crosses_the_line_once_inwards(server: ServerProcess) -> None:
    events, document = play(server, source="moving.mp4", track=True, lines=[LINE], zones=[ZONE])
    assert len(events) >= document["stats"]["frames_processed"] // 2 > 10
    ids = [d.get("tracker_id") for event in events for d in event["detections"]]
    confirmed = [i for i in ids if i is not None and i >= 0]
    assert len(set(confirmed)) == 1, set(confirmed)
    assert len(confirmed) >= 0.85 * len(events), (len(confirmed), len(events))  # all but the first min_hits frames
    last = events[-1]
    assert last["lines"] == [{"name": "middle", "in": 1, "out": 0, "by_class": {"person": {"in": 1, "out": 0}}}]
    totals = [event["zones"][0]["total"] for event in events]
    assert totals[0] == 0 and totals[-1] == 1 and set(totals) == {0, 1}
    assert totals == sorted(totals)  # empty until the photo's bottom centre enters on the right, then occupied


@pytest.mark.slow
def test_motion_gating_on_a_static_video_skips_inference_on_most_frames(server: ServerProcess) -> None:
    events, document = play(server, source="static.mp4", motion=True)
    stats = document["stats"]
    assert stats["frames_processed"] > 20
    assert stats["inferences"] <= 0.2 * stats["frames_processed"], stats
    assert all(event["detections"] for event in events)  # the last detections carry over skipped frames
