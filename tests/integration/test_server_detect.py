"""POST /v1/detect and /v1/models/{name}/detect on a real server process with the default model."""

from __future__ import annotations

from functools import cache

import cv2
import httpx
import numpy as np
import pytest
from tests.conftest import PHOTOS, encode, photo
from tests.integration.conftest import SHARED_MAX_PIXELS, metric_sum

from visionserve.api.wire.native import DetectResponse
from visionserve.models.default import DEFAULT_MODEL_NAME, default_spec


@cache
def jpeg(name: str) -> bytes:
    return encode(photo(name), ".jpg", IMWRITE_JPEG_QUALITY=95)


def labels_of(answer: dict[str, object]) -> list[str]:
    detections = answer["detections"]
    assert isinstance(detections, list)
    return [d["label"] for d in detections]


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_detects_the_subject_of_each_photo(client: httpx.Client, name: str) -> None:
    response = client.post("/v1/detect", files={"image": (f"{name}.jpg", jpeg(name), "image/jpeg")})
    assert response.status_code == 200, response.text
    answer = response.json()
    DetectResponse.model_validate(answer)
    height, width = photo(name).shape[:2]
    spec = default_spec()
    assert (answer["model"], answer["version"]) == (spec.name, spec.version)
    assert (answer["width"], answer["height"]) == (width, height)
    assert PHOTOS[name] in labels_of(answer)
    for detection in answer["detections"]:
        box = detection["box"]
        assert 0 <= box["x1"] < box["x2"] <= width and 0 <= box["y1"] < box["y2"] <= height
        assert detection["score"] >= spec.thresholds.conf
    scores = [d["score"] for d in answer["detections"]]
    assert scores == sorted(scores, reverse=True)
    timings = answer["timings"]
    assert set(timings) == {"queue", "decode", "preprocess", "inference", "postprocess", "total"}
    assert timings["inference"] > 0 and timings["total"] >= timings["inference"]


def test_raw_body_and_named_route_give_the_same_answer_as_multipart(client: httpx.Client) -> None:
    multipart = client.post("/v1/detect", files={"image": ("a.jpg", jpeg("chelsea"), "image/jpeg")}).json()
    raw = client.post(
        f"/v1/models/{DEFAULT_MODEL_NAME}/detect", content=jpeg("chelsea"), headers={"Content-Type": "image/jpeg"}
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["detections"] == multipart["detections"]


def test_several_images_give_one_result_each_in_order_from_one_forward_pass(client: httpx.Client) -> None:
    names = ["coffee", "astronaut", "chelsea"]
    before = client.get("/metrics").text
    files = [("image", (f"{n}.jpg", jpeg(n), "image/jpeg")) for n in names]
    response = client.post("/v1/detect", files=files)
    assert response.status_code == 200, response.text
    answer = response.json()
    DetectResponse.model_validate(answer)
    assert "detections" not in answer
    results = answer["results"]
    assert [PHOTOS[n] in labels_of(r) for n, r in zip(names, results, strict=True)] == [True] * 3
    assert [(r["width"], r["height"]) for r in results] == [photo(n).shape[1::-1] for n in names]
    after = client.get("/metrics").text
    # The three images were queued together: one pass of three (none of one or two).
    passes = "visionserve_batch_size_bucket"
    model = {"model": DEFAULT_MODEL_NAME}
    assert metric_sum(after, passes, le="2.0", **model) == metric_sum(before, passes, le="2.0", **model)
    assert metric_sum(after, passes, le="3.0", **model) == metric_sum(before, passes, le="3.0", **model) + 1


def test_png_input(client: httpx.Client) -> None:
    response = client.post("/v1/detect", content=encode(photo("coffee"), ".png"), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert "cup" in labels_of(response.json())


def test_options_filter_the_detections(client: httpx.Client) -> None:
    image = {"image": ("coffee.jpg", jpeg("coffee"), "image/jpeg")}
    everything = client.post("/v1/detect", files=image, params={"conf": "0.1"}).json()["detections"]
    assert len({d["label"] for d in everything}) >= 2
    strict = client.post("/v1/detect", files=image, params={"conf": "0.9"}).json()["detections"]
    assert all(d["score"] >= 0.9 for d in strict) and len(strict) < len(everything)
    cups = client.post("/v1/detect", files=image, params={"conf": "0.1", "classes": "cup"}).json()["detections"]
    assert cups and {d["label"] for d in cups} == {"cup"}
    by_id = client.post("/v1/detect", files=image, data={"conf": "0.1", "classes": "47"}).json()["detections"]
    assert by_id == cups
    one = client.post("/v1/detect", files=image, params={"conf": "0.1", "max_det": "1"}).json()["detections"]
    assert one == everything[:1]
    loose_nms = client.post("/v1/detect", files=image, params={"conf": "0.1", "iou": "0.9"})
    assert loose_nms.status_code == 200


def test_large_jpeg_decoded_at_reduced_size_still_answers_in_original_pixels(client: httpx.Client) -> None:
    side = 1800
    assert side * side <= SHARED_MAX_PIXELS
    small = client.post("/v1/detect", files={"image": ("a.jpg", jpeg("astronaut"), "image/jpeg")}).json()
    big_image = np.asarray(cv2.resize(photo("astronaut"), (side, side), interpolation=cv2.INTER_CUBIC), np.uint8)
    big = client.post("/v1/detect", content=encode(big_image, ".jpg"), headers={"Content-Type": "image/jpeg"}).json()
    assert (big["width"], big["height"]) == (side, side)
    person_small = next(d["box"] for d in small["detections"] if d["label"] == "person")
    person_big = next(d["box"] for d in big["detections"] if d["label"] == "person")
    scale = side / photo("astronaut").shape[1]
    for key in ("x1", "y1", "x2", "y2"):
        assert person_big[key] == pytest.approx(person_small[key] * scale, abs=0.04 * side)


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "image"}, {}), ({}, {"Accept": "image/jpeg"})],
    ids=["format=image", "accept"],
)
def test_annotated_image(client: httpx.Client, params: dict[str, str], headers: dict[str, str]) -> None:
    image = photo("chelsea")
    response = client.post(
        "/v1/detect", files={"image": ("c.png", encode(image, ".png"), "image/png")}, params=params, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    annotated = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert annotated is not None and annotated.shape == image.shape
    # The boxes and labels change many pixels; JPEG noise alone changes them by a few levels.
    changed = np.abs(annotated.astype(int) - image.astype(int)).max(axis=2) > 60
    assert changed.mean() > 0.005


def test_json_is_the_default_even_when_accept_allows_anything(client: httpx.Client) -> None:
    response = client.post(
        "/v1/detect", files={"image": ("a.jpg", jpeg("coffee"), "image/jpeg")}, headers={"Accept": "*/*"}
    )
    assert response.headers["content-type"] == "application/json"
