"""The /upload codec and the helpers every protocol codec shares."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from visionserve.api.wire.common import (
    RequestOptions,
    as_bgr_image,
    decode_base64,
    describe_validation_error,
    parse_color_order,
    split_classes,
)
from visionserve.api.wire.upload import (
    crop_index,
    crop_name,
    is_task_id,
    new_task_id,
    render_error,
    render_upload,
)
from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels
from visionserve.models.spec import ColorOrder

LABELS = Labels({1: "person", 17: "cat"})


def test_task_ids_and_crop_names_round_trip_and_reject_traversal() -> None:
    task = new_task_id()
    assert is_task_id(task) and task != new_task_id()
    assert crop_index(crop_name(12)) == 12
    for bad in ("../1.jpg", "01.jpg", "1.png", "-1.jpg", "1.jpg/..", "9999999.jpg"):
        assert crop_index(bad) is None
    for bad in ("..", task.upper(), task[:-1], task + "0", "../" + task[3:]):
        assert not is_task_id(bad)


def test_upload_answer_lists_scores_boxes_labels_and_crop_urls() -> None:
    found = Detections(
        np.array([[1.25, 2, 30, 40], [5, 6, 7, 8]], np.float32),
        np.array([0.91234, 0.5], np.float32),
        np.array([17, 1], np.int32),
    )
    answer = render_upload("ab" * 16, found, LABELS, lambda i: f"http://h/upload/{'ab' * 16}/{i}.jpg").model_dump()
    assert answer == {
        "status": "success",
        "task_id": "ab" * 16,
        "num_detections": 2,
        "score": [0.9123, 0.5],
        "boxes": [[1.2, 2.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0]],
        "labels": ["cat", "person"],
        "object_id": [f"http://h/upload/{'ab' * 16}/0.jpg", f"http://h/upload/{'ab' * 16}/1.jpg"],
    }


def test_upload_error_has_a_traceback_only_when_given() -> None:
    assert render_error("boom").model_dump() == {"status": "error", "error": "boom", "traceback": None}
    assert render_error("boom", "Traceback ...").traceback == "Traceback ..."


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(b"\xff\xd8\xfe").decode(),
        base64.urlsafe_b64encode(b"\xff\xd8\xfe").decode(),
        base64.b64encode(b"\xff\xd8\xfe").decode().rstrip("="),
        "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xfe").decode(),
        " /9\nj+ ",
    ],
)
def test_base64_accepts_the_usual_spellings(text: str) -> None:
    assert decode_base64("image", text) == b"\xff\xd8\xfe"


@pytest.mark.parametrize(("text", "message"), [("", "empty"), ("a", "not valid"), (None, "base64 string")])
def test_base64_errors_name_the_field(text: object, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"image.*{message}"):
        decode_base64("image", text)


def test_arrays_become_contiguous_bgr() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 9
    bgr = as_bgr_image("x", rgb, ColorOrder.RGB)
    assert bgr.flags.c_contiguous and bgr[0, 0].tolist() == [0, 0, 9]
    assert as_bgr_image("x", rgb, ColorOrder.BGR)[0, 0].tolist() == [9, 0, 0]
    with pytest.raises(InvalidParameterError, match="uint8"):
        as_bgr_image("x", rgb.astype(np.int16), ColorOrder.RGB)
    with pytest.raises(InvalidParameterError, match=r"got \(0, 2, 3\)"):
        as_bgr_image("x", np.zeros((0, 2, 3), np.uint8), ColorOrder.RGB)


def test_color_order_and_classes_parsing() -> None:
    assert parse_color_order("BGR") is ColorOrder.BGR
    with pytest.raises(InvalidParameterError, match="RGB or BGR"):
        parse_color_order("HSV")
    assert split_classes("person, car,,") == ("person", "car")
    assert split_classes(["cat", 3]) == ("cat", "3")
    assert split_classes("") is None and split_classes(None) is None
    with pytest.raises(InvalidParameterError, match="comma-separated"):
        split_classes(5)


def test_request_options_resolve_class_names_against_labels() -> None:
    options = RequestOptions(conf=0.3, classes=("cat", "1")).to_predict_options(LABELS)
    assert options.classes == frozenset({17, 1}) and options.conf == 0.3
    with pytest.raises(InvalidParameterError, match="unknown class 'dog'"):
        RequestOptions(classes=("dog",)).to_predict_options(LABELS)
    with pytest.raises(InvalidParameterError, match="conf must be between 0 and 1"):
        RequestOptions(conf=2.0).to_predict_options(LABELS)


class Inner(BaseModel):
    kind: int


class Outer(BaseModel):
    item: Inner | list[Inner]


def test_validation_errors_read_without_union_tags() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"item": {"kind": "x"}})
    assert describe_validation_error(caught.value).startswith("item.kind: ")
