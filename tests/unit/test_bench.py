"""The parts of ``visionserve bench`` without a server: the answer check, each protocol's codec, the
closed loop, the report, and the command's argument handling."""

from __future__ import annotations

import base64
import csv
import json
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from visionserve.bench.answers import Answer, Tolerance, answer_of, difference
from visionserve.bench.http import multipart
from visionserve.bench.loop import StepResult, run_step
from visionserve.bench.report import MODEL_ALONE, Row, table, with_ratios, write_csv, write_json
from visionserve.bench.sweep import load_images
from visionserve.bench.wire import CODECS, BenchImage, WireProtocol
from visionserve.cli.main import main
from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.errors import ImageDecodeError
from visionserve.models.labels import Labels

PERSON = ("person", 0.9, (10.0, 20.0, 110.0, 220.0))
DOG = ("dog", 0.5, (200.0, 40.0, 300.0, 140.0))
IMAGE = BenchImage("photo.jpg", b"\xff\xd8fake", width=400, height=300)


def test_same_answer_and_small_moves_match() -> None:
    reference = Answer.of([PERSON, DOG])
    assert difference(reference, Answer.of([PERSON, DOG]), Tolerance()) is None
    moved = Answer.of([("person", 0.91, (11.5, 20.0, 110.0, 218.5)), DOG])
    assert difference(reference, moved, Tolerance(box_pixels=2.0, score=0.02)) is None
    swapped = Answer.of([DOG, PERSON])  # order is not part of the answer
    assert difference(reference, swapped, Tolerance()) is None


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([PERSON], "1 rows instead of 2"),
        ([PERSON, DOG, DOG], "3 rows instead of 2"),
        ([PERSON, ("cat", 0.5, DOG[2])], "no match for dog"),
        ([PERSON, ("dog", 0.3, DOG[2])], "no match for dog"),
        ([("person", 0.9, (10.0, 20.0, 150.0, 220.0)), DOG], "no match for person"),
        ([PERSON, PERSON], "no match for dog"),
    ],
    ids=["missing", "extra", "label", "score", "box", "duplicate"],
)
def test_wrong_answers_say_why(rows: list[tuple[str, float, tuple[float, ...]]], reason: str) -> None:
    found = difference(Answer.of([PERSON, DOG]), Answer.of(rows), Tolerance())  # type: ignore[arg-type]
    assert found is not None and reason in found


def test_classes_without_boxes_compare_and_answers_validate() -> None:
    labels = Labels.from_list(["cat", "dog"])
    classes = answer_of(Classifications(np.array([1, 0], np.int32), np.array([0.7, 0.2], np.float32)), labels)
    assert classes.labels == ("dog", "cat") and classes.boxes.shape == (2, 0)
    assert difference(classes, Answer.of([("dog", 0.7, None), ("cat", 0.2, None)]), Tolerance()) is None
    assert difference(classes, Answer.of([PERSON, DOG]), Tolerance()) is not None
    boxes = answer_of(Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5]), np.array([0])), labels)
    assert boxes.labels == ("cat",) and boxes.boxes.tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match="as many scores and boxes as labels"):
        Answer(("a",), np.zeros(2), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="every row"):
        Answer.of([PERSON, ("dog", 0.5, None)])


def _answers(protocol: WireProtocol) -> bytes:
    """A hand-written answer of ``protocol`` holding PERSON and DOG on IMAGE."""
    rows = [PERSON, DOG]
    if protocol is WireProtocol.NATIVE:
        detections = [
            {"label": n, "score": s, "class_id": 0, "box": dict(zip(("x1", "y1", "x2", "y2"), b, strict=True))}
            for n, s, b in rows
        ]
        return json.dumps({"model": "m", "width": 400, "height": 300, "detections": detections}).encode()
    if protocol is WireProtocol.DEEPSTACK:
        predictions = [
            {"label": n, "confidence": s, **dict(zip(("x_min", "y_min", "x_max", "y_max"), map(int, b), strict=True))}
            for n, s, b in rows
        ]
        return json.dumps({"success": True, "predictions": predictions}).encode()
    if protocol is WireProtocol.KSERVE:
        outputs = [
            {"name": "num_detections", "datatype": "INT32", "shape": [1], "data": [2]},
            {"name": "boxes", "datatype": "FP32", "shape": [1, 3, 4], "data": [*PERSON[2], *DOG[2], 0, 0, 0, 0]},
            {"name": "scores", "datatype": "FP32", "shape": [1, 3], "data": [0.9, 0.5, 0.0]},
            {"name": "labels", "datatype": "BYTES", "shape": [1, 3], "data": ["person", "dog", ""]},
        ]
        return json.dumps({"model_name": "m", "outputs": outputs}).encode()
    if protocol is WireProtocol.TFSERVING:
        boxes = [[y1 / 300, x1 / 400, y2 / 300, x2 / 400] for _, _, (x1, y1, x2, y2) in rows] + [[0, 0, 0, 0]]
        prediction = {
            "num_detections": 2.0,
            "detection_boxes": boxes,
            "detection_scores": [0.9, 0.5, 0.0],
            "detection_class_names": ["person", "dog", ""],
        }
        return json.dumps({"predictions": [prediction]}).encode()
    predictions = [
        {"class": n, "confidence": s, "x": (b[0] + b[2]) / 2, "y": (b[1] + b[3]) / 2, "width": b[2] - b[0],
         "height": b[3] - b[1]}
        for n, s, b in rows
    ]  # fmt: skip
    return json.dumps({"predictions": predictions}).encode()


@pytest.mark.parametrize("protocol", list(WireProtocol))
def test_every_protocol_reads_back_the_same_rows(protocol: WireProtocol) -> None:
    answer = CODECS[protocol].answer(_answers(protocol), IMAGE)
    assert difference(Answer.of([PERSON, DOG]), answer, Tolerance(box_pixels=1.0, score=1e-6)) is None
    with pytest.raises((ValueError, KeyError, TypeError)):
        CODECS[protocol].answer(b'{"nothing": 1}', IMAGE)


def test_requests_carry_the_image_and_the_key_where_each_client_puts_it() -> None:
    native = CODECS[WireProtocol.NATIVE].request(IMAGE, None, "k1")
    assert native.path == "/v1/predict" and native.headers["Authorization"] == "Bearer k1"
    assert b'name="mask_format"\r\n\r\nnone' in native.body and IMAGE.data in native.body
    deepstack = CODECS[WireProtocol.DEEPSTACK].request(IMAGE, "my model", "k2")
    assert deepstack.path == "/v1/vision/custom/my%20model" and "Authorization" not in deepstack.headers
    assert b'name="api_key"\r\n\r\nk2\r\n' in deepstack.body
    kserve = CODECS[WireProtocol.KSERVE].request(IMAGE, "m", None)
    length = int(kserve.headers["Inference-Header-Content-Length"])
    header, tensor = json.loads(kserve.body[:length]), kserve.body[length:]
    assert kserve.path == "/v2/models/m/infer" and tensor == struct.pack("<I", len(IMAGE.data)) + IMAGE.data
    assert header["inputs"][0]["parameters"]["binary_data_size"] == len(tensor)
    tf = json.loads(CODECS[WireProtocol.TFSERVING].request(IMAGE, "m", None).body)
    assert base64.b64decode(tf["instances"][0]["b64"]) == IMAGE.data
    roboflow = CODECS[WireProtocol.ROBOFLOW].request(IMAGE, "m", "k3")
    assert json.loads(roboflow.body)["api_key"] == "k3" and "Authorization" not in roboflow.headers
    for protocol in (WireProtocol.KSERVE, WireProtocol.TFSERVING, WireProtocol.ROBOFLOW):
        assert CODECS[protocol].needs_model_name
        with pytest.raises(ValueError, match="needs a model name"):
            CODECS[protocol].request(IMAGE, None, None)


def test_multipart_puts_text_fields_before_the_file() -> None:
    body, content_type = multipart("image", b"DATA", fields={"a": "1"})
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert body.index(b'name="a"') < body.index(b'name="image"') < body.index(b"DATA")


class Flaky:
    """A worker that takes ``pause`` seconds per call and fails every third call."""

    def __init__(self, pause: float) -> None:
        self.pause, self.calls, self.closed = pause, 0, False

    def __call__(self) -> str | None:
        time.sleep(self.pause)
        self.calls += 1
        return "wrong answer" if self.calls % 3 == 0 else None

    def close(self) -> None:
        self.closed = True


def test_run_step_counts_the_window_only_and_closes_workers() -> None:
    workers: list[Flaky] = []

    def make(_: int) -> Flaky:
        workers.append(Flaky(0.01))
        return workers[-1]

    ticks: list[float] = []
    step = run_step(make, 3, duration=0.6, warmup=0.3, images_per_call=2, on_tick=ticks.append)
    assert len(workers) == 3 and all(w.closed for w in workers)
    assert step.seconds == pytest.approx(0.6, abs=0.05)
    # Calls in the warm-up are not counted: fewer counted than made.
    assert 0 < step.calls < sum(w.calls for w in workers)
    assert step.errors.keys() == {"wrong answer"} and 0 < step.error_count < step.calls
    assert step.images_per_s == pytest.approx((step.calls - step.error_count) * 2 / step.seconds)
    assert len(step.latencies) == step.calls and min(step.latencies) >= 0.01
    assert step.percentile_ms(50) >= 10 and ticks and step.cpu_seconds >= 0


def test_run_step_stops_at_max_calls_and_names_unexpected_errors() -> None:
    class Broken:
        def __call__(self) -> str | None:
            raise OSError("gone")

        def close(self) -> None:
            pass

    step = run_step(lambda _: Broken(), 2, duration=30.0, max_calls=10)
    assert step.calls == 10 and step.errors == Counter({"OSError": 10}) and step.seconds < 5
    assert threading.active_count() < 50
    with pytest.raises(ValueError, match="concurrency"):
        run_step(lambda _: Broken(), 0, 1.0)


def _step(c: int, latencies: list[float], errors: Counter[str] | None = None, seconds: float = 2.0) -> StepResult:
    return StepResult(c, 1, seconds, len(latencies), errors or Counter(), latencies, 0.5)


def test_report_ratios_table_json_and_csv(tmp_path: Path) -> None:
    rows = with_ratios(
        [
            Row("server native", _step(1, [0.04] * 40)),
            Row(MODEL_ALONE, _step(1, [0.02] * 80)),
            Row("server native", _step(2, [0.05] * 40, Counter({"wrong answer": 4}))),
        ]
    )
    assert rows[0].throughput_ratio == pytest.approx(0.5) and rows[0].p50_ratio == pytest.approx(2.0)
    assert rows[1].throughput_ratio is None and rows[2].throughput_ratio is None
    text = table(rows)
    assert text.splitlines()[0].split()[:4] == ["target", "conc", "batch", "img/s"]
    assert "0.50x" in text and "2.00x" in text and all(line == line.rstrip() for line in text.splitlines())
    assert "errors of server native at c=2 b=1: 4 wrong answer" in text
    write_json(tmp_path / "r.json", {"mode": "server"}, rows)
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["mode"] == "server" and len(document["steps"]) == 3
    first = document["steps"][0]
    assert first["images_per_s"] == 20.0 and first["p50_ms"] == 40.0 and first["cpu_cores"] == 0.25
    assert document["steps"][2]["errors"] == 4 and document["steps"][2]["images_per_s"] == 18.0
    write_csv(tmp_path / "r.csv", rows)
    lines = list(csv.DictReader((tmp_path / "r.csv").read_text().splitlines()))
    assert lines[2]["error_kinds"] == "wrong answer=4" and lines[0]["throughput_ratio"] == "0.5"


def test_images_default_to_the_bundled_samples(tmp_path: Path) -> None:
    samples = load_images([])
    assert [(i.width, i.height) for i in samples] == [(512, 512), (451, 300)]
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(ImageDecodeError, match=r"notes\.jpg"):
        load_images([bad])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "ten"], "not a duration"),
        (["--concurrency", "1,x"], "comma-separated list"),
        (["--concurrency", "0"], "at least 1"),
        (["--model-alone"], "need --url"),
        (["--protocol", "kserve"], "need --url"),
        (["--url", "http://127.0.0.1:1", "--batch", "1,4"], "--batch is for in-process"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 2 and message in result.output


def test_a_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(main, ["bench", "--images", str(tmp_path)])
    assert result.exit_code == 2 and "no image files" in result.output


def test_unreachable_server_is_a_one_line_error() -> None:
    result = CliRunner().invoke(main, ["bench", "--url", "http://127.0.0.1:9", "--duration", "1s"])
    assert result.exit_code == 1 and "cannot reach the server" in result.output


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The protocol tests' repository: ``tiny-yolo`` (known boxes) and tiny models of the other tasks."""
    from tests.integration.protocol_servers import write_repository

    return write_repository(tmp_path_factory.mktemp("bench") / "models")


def test_in_process_sweep_over_concurrency_and_batch(tiny_repository: Path, tmp_path: Path) -> None:
    out = tmp_path / "in-process.json"
    args = ["bench", "--model", "tiny-yolo", "--models", str(tiny_repository), "--concurrency", "1,2"]
    args += ["--batch", "1,2", "--duration", "1s", "--warmup", "0.2s", "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "in-process" in result.output and "img/s" in result.output
    document = json.loads(out.read_text())
    assert document["mode"] == "in-process" and document["model"] == "tiny-yolo"
    assert [(s["concurrency"], s["batch"]) for s in document["steps"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for step in document["steps"]:
        assert step["requests"] > 0 and step["errors"] == 0 and step["images_per_s"] > 0
        assert step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"] and step["cpu_cores"] > 0


def test_in_process_classifier(tiny_repository: Path, tmp_path: Path) -> None:
    out = tmp_path / "cls.csv"
    args = ["bench", "--model", "tiny-cls", "--models", str(tiny_repository), "--concurrency", "1"]
    result = CliRunner().invoke(main, [*args, "--duration", "1s", "--warmup", "0s", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = csv.DictReader(out.read_text().splitlines())
    assert line["target"] == "in-process" and int(line["requests"]) > 0 and line["errors"] == "0"
