"""Dynamic batching across callers, and backpressure from a bounded queue."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from tests.conftest import PHOTOS, encode, photo
from tests.integration.conftest import SINGLE, SLEEPY, ServerProcess, metric_sum


def in_progress(client: httpx.Client) -> float:
    """Requests being served, not counting the /metrics request that asks."""
    return metric_sum(client.get("/metrics").text, "visionserve_requests_in_progress") - 1


def wait_in_progress(client: httpx.Client, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while in_progress(client) < count:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.01)


def solid(bgr: tuple[int, int, int]) -> bytes:
    return encode(np.full((32, 48, 3), bgr, np.uint8), ".png")


def test_concurrent_callers_share_a_forward_pass_and_get_their_own_results(
    shared_server: ServerProcess, client: httpx.Client
) -> None:
    """While a long batch keeps the single instance busy, three callers queue up; they leave in one
    pass, and each gets the detections of its own photo."""
    names = sorted(PHOTOS)
    photos = {name: encode(photo(name), ".jpg") for name in names}
    before = client.get("/metrics").text
    blocker_files = [("image", ("coffee.jpg", photos["coffee"], "image/jpeg"))] * 4

    def post(files: list[tuple[str, tuple[str, bytes, str]]]) -> httpx.Response:
        with httpx.Client(base_url=shared_server.url, timeout=60) as own:
            return own.post(f"/v1/models/{SINGLE}/detect", files=files)

    with ThreadPoolExecutor(4) as pool:
        blocker = pool.submit(post, blocker_files)
        wait_in_progress(client, 1)
        callers = {name: pool.submit(post, [("image", (f"{name}.jpg", photos[name], "image/jpeg"))]) for name in names}
        answers = {name: future.result() for name, future in callers.items()}
        assert blocker.result().status_code == 200
    for name, response in answers.items():
        assert response.status_code == 200, response.text
        labels = [d["label"] for d in response.json()["detections"]]
        assert PHOTOS[name] in labels, (name, labels)
        assert (response.json()["width"], response.json()["height"]) == photo(name).shape[1::-1]
    after = client.get("/metrics").text
    passes = metric_sum(after, "visionserve_batch_size_count", model=SINGLE) - metric_sum(
        before, "visionserve_batch_size_count", model=SINGLE
    )
    images = metric_sum(after, "visionserve_images_total", model=SINGLE) - metric_sum(
        before, "visionserve_images_total", model=SINGLE
    )
    assert images == 4 + len(names)
    assert passes < 1 + len(names), "the three callers should not have needed a pass each"


def test_each_caller_of_a_shared_batch_gets_its_own_result(shared_server: ServerProcess, client: httpx.Client) -> None:
    """The slow plugin answers each image with its dominant colour: a shared batch must not mix
    them up."""
    colours = {"blue": (255, 0, 0), "green": (0, 255, 0), "red": (0, 0, 255)}
    before = client.get("/metrics").text

    def post(bgr: tuple[int, int, int]) -> httpx.Response:
        with httpx.Client(base_url=shared_server.url, timeout=60) as own:
            return own.post(f"/v1/models/{SLEEPY}/detect", content=solid(bgr), headers={"Content-Type": "image/png"})

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(post, colours["blue"])
        wait_in_progress(client, 1)
        rest = {name: pool.submit(post, colours[name]) for name in ("green", "red")}
        results = {"blue": first.result(), **{name: f.result() for name, f in rest.items()}}
    for name, response in results.items():
        assert response.status_code == 200, response.text
        (detection,) = response.json()["detections"]
        assert detection["label"] == name
        assert detection["box"] == {"x1": 0.0, "y1": 0.0, "x2": 48.0, "y2": 32.0}
    after = client.get("/metrics").text
    pairs = metric_sum(after, "visionserve_batch_size_bucket", model=SLEEPY, le="2.0") - metric_sum(
        after, "visionserve_batch_size_bucket", model=SLEEPY, le="1.0"
    )
    pairs_before = metric_sum(before, "visionserve_batch_size_bucket", model=SLEEPY, le="2.0") - metric_sum(
        before, "visionserve_batch_size_bucket", model=SLEEPY, le="1.0"
    )
    assert pairs == pairs_before + 1  # green and red shared one pass


def test_a_full_queue_answers_429_with_retry_after(shared_server: ServerProcess) -> None:
    """The slow plugin has one instance and a queue of two: of six requests sent at once, one
    runs, two wait, and the others are turned away at once."""

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=shared_server.url, timeout=60) as own:
            return own.post(
                f"/v1/models/{SLEEPY}/detect", content=solid((0, 200, 0)), headers={"Content-Type": "image/png"}
            )

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 3, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert refused, statuses
    for response in refused:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "overloaded"
        assert "queue" in response.json()["error"]["message"]
