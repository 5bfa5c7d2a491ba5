"""Real ``visionserve serve`` processes for the protocol tests, started once per test session.

Servers are launched by ``conftest.launch_server`` on a repository that holds, beside the default
model (SSD MobileNet v2 COCO), ``tiny-yolo``: a YOLOv8 ONNX model built here whose output is a
fixed table, so its boxes are known exactly (see :data:`YOLO_BOXES`), ``crashy``, the test
plugin that fails on red images, and one tiny model of each other task with constant answers
(``tiny-seg``, ``tiny-pose``, ``tiny-cls``: see ``tests/factories.py``). They are kept in a
per-process cache (one per set of flags) and stopped at exit, so that every protocol module
shares them without a session fixture in conftest. Each also serves KServe v2 over gRPC
(``server.grpc_target``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from tests.factories import constant_onnx, yolov8_table
from tests.integration.conftest import ServerProcess, launch_server, write_plugin_model
from tests.protocol_task_models import classify_model, yolov8_pose_model, yolov8_seg_model

DEFAULT_MODEL = "ssd-mobilenet-v2-coco"
YOLO_MODEL = "tiny-yolo"
YOLO_LABELS = ["person", "car"]
#: Detections of ``tiny-yolo`` on any 640x640 image: (x1, y1, x2, y2), class id, score; best first.
YOLO_BOXES = [((100.0, 120.0, 300.0, 420.0), 0, 0.9), ((400.0, 50.0, 600.0, 150.0), 1, 0.6)]
#: A plugin model that raises on mostly red images (see ``sleepy_plugin.py``).
CRASHY_MODEL = "crashy"
API_KEY = "protocol-test-key"
#: Tiny models of the other tasks (64x64 inputs; their answers are the constants of tests/factories.py).
SEG_MODEL, POSE_MODEL, CLS_MODEL = "tiny-seg", "tiny-pose", "tiny-cls"
TASK_MODELS = (SEG_MODEL, POSE_MODEL, CLS_MODEL)


def write_repository(root: Path) -> Path:
    """A model repository with ``tiny-yolo`` (a model.yaml and its ONNX file) and the tiny models
    of the other tasks."""
    rows = [
        (*(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)), cls, score) for (x1, y1, x2, y2), cls, score in YOLO_BOXES
    ]
    folder = root / YOLO_MODEL
    folder.mkdir(parents=True)
    constant_onnx(folder / "net.onnx", yolov8_table(rows, num_classes=2), input_shape=("batch", 3, 640, 640))
    (folder / "model.yaml").write_text(
        f"name: {YOLO_MODEL}\nversion: '3'\nbackend: onnxruntime\nfiles: {{model: net.onnx}}\n"
        "input: {width: 640, height: 640, resize: letterbox, color: rgb, scale: 0.00392156862745098}\n"
        f"decoder: {{layout: yolov8}}\nlabels: {YOLO_LABELS}\nthresholds: {{conf: 0.25, iou: 0.45}}\n",
        encoding="utf-8",
    )
    yolov8_seg_model(root / SEG_MODEL, SEG_MODEL)
    yolov8_pose_model(root / POSE_MODEL, POSE_MODEL)
    classify_model(root / CLS_MODEL, CLS_MODEL)
    return root


def _start(*flags: str) -> ServerProcess:
    root = Path(tempfile.mkdtemp(prefix="visionserve-protocols-"))
    repository = write_repository(root / "models")
    write_plugin_model(repository, CRASHY_MODEL, crash_on_red=True, instances=1)
    args = ("--models", str(repository), "--data-dir", str(root / "data"), "--threads", "2", *flags)
    return launch_server(args, log_dir=root, grpc=True)


_SERVERS: dict[tuple[str, ...], ServerProcess] = {}


def protocol_server(*flags: str) -> ServerProcess:
    """The server started with ``flags`` (started on first use, stopped when the tests end)."""
    server = _SERVERS.get(flags)
    if server is None or server.process.poll() is not None:
        server = _SERVERS[flags] = _start(*flags)
    return server


def data_dir(server: ServerProcess) -> Path:
    """The ``--data-dir`` of a server made by :func:`protocol_server`."""
    return server.log_path.parent / "data"


@atexit.register
def _stop_all() -> None:
    for server in _SERVERS.values():
        if server.process.poll() is None:
            server.stop()
        shutil.rmtree(server.log_path.parent, ignore_errors=True)
