"""The DeepStack / CodeProject.AI codec on hand-built detections."""

from __future__ import annotations

import numpy as np
import pytest

from visionserve.api.wire.deepstack import (
    DEFAULT_MIN_CONFIDENCE,
    DeepStackCommand,
    DeepStackPrediction,
    ServerFacts,
    Timing,
    parse_min_confidence,
    render_detection,
    render_error,
    render_model_list,
    summary_message,
    to_predictions,
)
from visionserve.core.detections import Detections
from visionserve.errors import InvalidParameterError
from visionserve.models.labels import Labels

LABELS = Labels({1: "person", 3: "car", 17: "cat"})


def found(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    array = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(array[:, :4], array[:, 4], array[:, 5].astype(np.int32))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, DEFAULT_MIN_CONFIDENCE), ("", 0.4), ("  ", 0.4), ("0.65", 0.65), ("1", 1.0), ("0", 0.0)],
)
def test_min_confidence_reads_like_deepstack(raw: str | None, expected: float) -> None:
    assert parse_min_confidence(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("high", "Invalid value for min_confidence"),
        ("nan", "Invalid value for min_confidence"),
        ("1.5", "min_confidence cannot be greater than 1"),
        ("-0.1", "min_confidence cannot be less than 0"),
    ],
)
def test_bad_min_confidence_is_rejected_with_deepstacks_message(raw: str, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_min_confidence(raw)


def test_predictions_are_sorted_filtered_clipped_and_integer() -> None:
    detections = found(
        [
            (10.7, 20.2, 30.9, 40.5, 0.5, 3),
            (-5.0, 2.0, 700.0, 300.0, 0.95, 1),
            (1, 1, 2, 2, 0.3, 17),
        ]
    )
    predictions = to_predictions(detections, LABELS, width=640, height=480, min_confidence=0.4)
    assert [p.label for p in predictions] == ["person", "car"]
    assert [p.confidence for p in predictions] == pytest.approx([0.95, 0.5])
    first, second = (p.model_dump() for p in predictions)
    assert (first["x_min"], first["y_min"], first["x_max"], first["y_max"]) == (0, 2, 640, 300)
    assert (second["x_min"], second["y_min"], second["x_max"], second["y_max"]) == (10, 20, 30, 40)
    assert all(isinstance(first[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "No objects found"),
        (["person"], "Found person"),
        (["person", "car", "cat"], "Found person, car, cat"),
        (["person", "car", "cat", "dog"], "Found person, car, cat..."),
    ],
)
def test_message_names_at_most_three_labels(labels: list[str], message: str) -> None:
    predictions = [
        DeepStackPrediction(confidence=0.9, label=label, x_min=0, y_min=0, x_max=1, y_max=1) for label in labels
    ]
    assert summary_message(predictions) == message


def test_detection_answer_carries_deepstack_and_codeproject_fields() -> None:
    predictions = to_predictions(found([(0, 0, 5, 5, 0.8, 17)]), LABELS, 10, 10)
    timing = Timing(process_ms=41.6, inference_ms=35.2, round_trip_ms=44.4, timestamp=0.0)
    answer = render_detection(
        predictions, DeepStackCommand.CUSTOM, timing, ServerFacts(processed_by="box")
    ).model_dump()
    assert answer["success"] is True
    assert answer["predictions"] == [
        {"confidence": pytest.approx(0.8), "label": "cat", "x_min": 0, "y_min": 0, "x_max": 5, "y_max": 5}
    ]
    assert (answer["count"], answer["message"], answer["command"]) == (1, "Found cat", "custom")
    assert (answer["processMs"], answer["inferenceMs"], answer["analysisRoundTripMs"]) == (42, 35, 44)
    assert answer["duration"] == pytest.approx(0.0444)
    assert answer["timestampUTC"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert (answer["processedBy"], answer["code"]) == ("box", 200)


def test_error_and_model_list_bodies() -> None:
    assert render_error("Incorrect api key", 401).model_dump() == {
        "success": False,
        "error": "Incorrect api key",
        "duration": 0.0,
        "code": 401,
    }
    listing = render_model_list(["yolo", "ssd"], ServerFacts()).model_dump()
    assert listing["models"] == ["ssd", "yolo"] and listing["success"] is True
