"""Backends: configurable ONNX Runtime providers, OpenCV DNN on the same ONNX file, and runtime
errors translated into visionserve's error tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from tests.factories import constant_onnx, solid_image, ultralytics_metadata, yolov8_table

from visionserve.backends.onnxruntime import OnnxRuntimeSession
from visionserve.backends.registry import open_session
from visionserve.errors import InferenceError, MissingDependencyError, ModelLoadError
from visionserve.models.loading import load_model
from visionserve.models.spec import ModelSpec, spec_from_mapping

TABLE = yolov8_table([(32, 32, 16, 8, 1, 0.9), (10, 40, 4, 4, 0, 0.6)], num_classes=2)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backends") / "tiny.onnx"
    return constant_onnx(path, TABLE, input_shape=(1, 3, 64, 64), metadata=ultralytics_metadata(["a", "b"], (64, 64)))


def spec(path: Path, **fields: object) -> ModelSpec:
    data = {
        "name": "tiny",
        "backend": "onnxruntime",
        "files": {"model": path.name},
        "input": {"width": 64, "height": 64, "resize": "letterbox", "scale": 1 / 255, "fixed_batch": 1},
        "decoder": {"layout": "yolov8"},
        "labels": ["a", "b"],
        **fields,
    }
    return spec_from_mapping(data, "test", path.parent)


@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "NoSuchExecutionProvider"])
def test_unavailable_provider_is_a_clear_load_error(onnx_path: Path, provider: str) -> None:
    if provider in onnxruntime.get_available_providers():
        pytest.skip(f"{provider} is available in this onnxruntime build")
    with pytest.raises(ModelLoadError, match=f"execution providers \\['{provider}'\\] are not available"):
        load_model(spec(onnx_path, runtime={"providers": [provider, "CPUExecutionProvider"]}))


def test_configured_providers_and_threads_are_used(onnx_path: Path) -> None:
    session = OnnxRuntimeSession(onnx_path, providers=("CPUExecutionProvider",), threads=1)
    assert session._session.get_providers() == ["CPUExecutionProvider"]
    assert session._session.get_session_options().intra_op_num_threads == 1
    assert [(i.name, i.shape, i.dtype) for i in session.inputs] == [("images", (1, 3, 64, 64), "float32")]
    assert session.output_shapes == [(1, 6, 16)]
    assert session.metadata["names"] == "{0: 'a', 1: 'b'}"
    outputs = session.run({"images": np.zeros((1, 3, 64, 64), np.float32)})
    np.testing.assert_array_equal(outputs[0], TABLE)
    session.close()


def test_opencv_dnn_reads_the_same_onnx_file(onnx_path: Path) -> None:
    images = [solid_image(128, 64), solid_image(64, 64)]
    by_runtime = {}
    for backend in ("onnxruntime", "opencv_dnn"):
        model = load_model(spec(onnx_path, backend=backend))
        by_runtime[backend] = [
            (d.xyxy.tolist(), d.confidence.tolist(), d.class_id.tolist()) for d in model.infer(images).predictions
        ]
        model.close()
    # 128 x 64 letterboxed into 64 x 64: scale 0.5, 16 px bars top and bottom.
    assert by_runtime["opencv_dnn"][0] == (
        [[48, 24, 80, 40], [16, 44, 24, 52]],
        [pytest.approx(0.9), pytest.approx(0.6)],
        [1, 0],
    )
    assert by_runtime["onnxruntime"] == by_runtime["opencv_dnn"]


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv_dnn"])
def test_corrupt_model_file_is_a_load_error(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelLoadError, match=r"cannot (load|read) .*broken\.onnx"):
        open_session(spec(path, backend=backend))


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv_dnn"])
def test_missing_model_file_is_a_load_error(tmp_path: Path, backend: str) -> None:
    with pytest.raises(ModelLoadError, match="model file not found"):
        open_session(spec(tmp_path / "absent.onnx", backend=backend))


def test_unknown_opencv_target_is_a_load_error(onnx_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unknown OpenCV DNN backend/target 'default'/'tpu'"):
        open_session(spec(onnx_path, backend="opencv_dnn", runtime={"opencv_target": "tpu"}))


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv_dnn"])
def test_wrong_input_is_an_inference_error(onnx_path: Path, backend: str) -> None:
    session = open_session(spec(onnx_path, backend=backend))
    with pytest.raises(InferenceError):
        session.run({session.inputs[0].name: np.zeros((1, 5, 7), np.float32)})
    session.close()


def test_plugin_backend_has_no_network_session(tmp_path: Path) -> None:
    plugin = spec_from_mapping({"name": "p", "backend": "plugin", "plugin": "a.b:C"}, "test", tmp_path)
    with pytest.raises(ModelLoadError, match="has no network session"):
        open_session(plugin)


def test_fixed_batch_models_run_in_padded_chunks(tmp_path: Path) -> None:
    """A model exported with batch 2 (read from its input shape, no yaml field) serves 3 images:
    two chunks, the last padded, and every image gets its own detections."""
    path = constant_onnx(tmp_path / "b2.onnx", TABLE, input_shape=(2, 3, 64, 64))
    fields = {"input": {"width": 64, "height": 64, "resize": "letterbox", "scale": 1 / 255}}
    model = load_model(spec(path, **fields))
    images = [solid_image(64, 64, (0, 0, 255)) for _ in range(3)]
    results = model.predict(images)
    assert len(results) == 3
    for found in results:
        assert sorted(found.class_id.tolist()) == [0, 1]


def _cpu_only_session(model: str, options: object, providers: list[tuple[str, dict[str, str]]]) -> object:
    """What ONNX Runtime does when CUDA is listed but fails to initialise: a session on the CPU alone."""
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def test_a_gpu_provider_that_fails_to_start_is_refused_not_replaced_by_the_cpu(onnx_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"could not start \['CUDAExecutionProvider'\].*refusing to fall back"):
        OnnxRuntimeSession(
            onnx_path,
            providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
            create_session=_cpu_only_session,
            available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        )


def test_sessions_never_fall_back_to_the_cpu_during_a_run(onnx_path: Path) -> None:
    session = OnnxRuntimeSession(onnx_path, providers=("CPUExecutionProvider",))
    assert session.providers == ["CPUExecutionProvider"]
    assert session._session._enable_fallback is False  # ONNX Runtime's retry-on-CPU switch


def test_a_missing_gpu_build_names_the_package_to_install(onnx_path: Path) -> None:
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    with pytest.raises(MissingDependencyError, match=r"pip install onnxruntime-gpu==\d+\.\d+\.\d+"):
        load_model(spec(onnx_path, runtime={"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}))


def test_missing_dependency_messages_name_extras_that_exist() -> None:
    """Every ``visionserve[extra]`` named in the sources is an extra of pyproject.toml."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[2]
    extras = set(tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {m for f in (root / "src").rglob("*.py") for m in re.findall(r"visionserve\[(\w+)\]", f.read_text())}
    assert named <= extras, f"extras named in messages but missing from pyproject.toml: {named - extras}"
