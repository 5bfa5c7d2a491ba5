"""The batch conversion gives what the formula in InputSpec's docstring says, for every layout."""

from __future__ import annotations

import numpy as np
import pytest

from visionserve.core.geometry import ResizeMode
from visionserve.models.spec import ColorOrder, InputSpec
from visionserve.preprocess import Preprocessor


def reference(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One image already at the input size, converted the slow, obvious way."""
    pixels = image[..., ::-1] if spec.color is ColorOrder.RGB else image
    values = (pixels.astype(np.float64) - np.array(spec.mean)) * spec.scale / np.array(spec.std)
    return values.transpose(2, 0, 1) if spec.layout == "nchw" else values


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("color", [ColorOrder.RGB, ColorOrder.BGR])
@pytest.mark.parametrize("normalize", [False, True])
def test_conversion_matches_the_formula(layout: str, color: ColorOrder, normalize: bool) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for _ in range(3)]
    extra = {"mean": (123.7, 116.3, 103.5), "std": (58.4, 57.1, 57.4), "scale": 1.0} if normalize else {}
    spec = InputSpec(width=6, height=8, color=color, layout=layout, **extra)
    blob, fits = Preprocessor(spec)(images)
    assert blob.dtype == np.float32 and blob.flags.c_contiguous and len(fits) == 3
    for got, image in zip(blob, images, strict=True):
        np.testing.assert_allclose(got, reference(image, spec), rtol=1e-5, atol=1e-4)


def test_uint8_and_float16_and_letterbox_padding() -> None:
    image = np.full((2, 4, 3), 7, np.uint8)
    spec = InputSpec(width=4, height=4, resize=ResizeMode.LETTERBOX, dtype="uint8", pad_value=114)
    blob, _ = Preprocessor(spec)([image])
    assert blob.dtype == np.uint8 and blob.shape == (1, 3, 4, 4)
    assert blob[0, 0, :, 0].tolist() == [114, 7, 7, 114]
    half = InputSpec(width=4, height=4, dtype="float16", scale=1 / 255)
    blob16, _ = Preprocessor(half)([image])
    assert blob16.dtype == np.float16 and float(blob16[0, 0, 0, 0]) == pytest.approx(7 / 255, rel=1e-3)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("color", [ColorOrder.RGB, ColorOrder.BGR])
def test_uint8_batches_keep_the_exact_pixels_in_the_models_order(layout: str, color: ColorOrder) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for _ in range(3)]
    originals = [image.copy() for image in images]
    spec = InputSpec(width=6, height=8, color=color, layout=layout, dtype="uint8")
    blob, _ = Preprocessor(spec)(images)
    assert blob.dtype == np.uint8 and blob.flags.c_contiguous
    for got, image, original in zip(blob, images, originals, strict=True):
        np.testing.assert_array_equal(got, reference(image, spec).astype(np.uint8))
        np.testing.assert_array_equal(image, original)  # the callers' images are not touched
