"""Run a model over an evaluation set exactly as the server does, and keep its answers as COCO results.

The image bytes go through the server's own decode (:func:`~visionserve.serving.instances.decode_for_model`:
a large JPEG decodes at reduced size, as on every route) and the model's own preprocessing, decoder,
NMS (the model's ``iou``) and ``max_det``; boxes come back in source pixels. Only the confidence is
lowered, to :data:`CONF_FLOOR`, so that precision-recall curves reach low scores (COCO's mAP is
computed over every score). Classify models list their :data:`TOP_K` best classes at any score.

:class:`Infer` is the seam: the CLI runs a model loaded here (:func:`local_infer`), a server job runs
the served model (same instances and batcher as requests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionserve.core.classifications import Classifications
from visionserve.core.detections import Detections
from visionserve.core.images import DEFAULT_MAX_PIXELS
from visionserve.core.prediction import Prediction
from visionserve.errors import DatasetError, InputError
from visionserve.models.spec import ModelSpec, Task
from visionserve.pipeline import PredictOptions, Predictor
from visionserve.render.mask_encoding import rle
from visionserve.serving.instances import decode_for_model

#: The confidence an evaluation runs the model at (the model's own ``conf`` still gives the
#: precision and recall "at the configured threshold").
CONF_FLOOR = 0.001
#: Classify models: how many classes each image's answer keeps (for top-5 accuracy).
TOP_K = 5

#: Encoded image bytes -> the prediction in source pixels, with the source's width and height.
Infer = Callable[[bytes], tuple[Prediction, int, int]]


def eval_options(spec: ModelSpec) -> PredictOptions:
    """The options an evaluation runs ``spec`` with (see the module docstring)."""
    if spec.task is Task.CLASSIFY:
        return PredictOptions(conf=0.0, top_k=TOP_K)
    return PredictOptions(conf=CONF_FLOOR)


def local_infer(model: Predictor, max_pixels: int = DEFAULT_MAX_PIXELS) -> Infer:
    """An :data:`Infer` on a model loaded in this process, decoding as the server does."""
    options = eval_options(model.spec)

    def infer(data: bytes) -> tuple[Prediction, int, int]:
        decoded = decode_for_model(data, max_pixels, model.spec.input)
        (prediction,) = model.infer([decoded.image], options).predictions
        sx, sy = decoded.scale
        return (prediction if (sx, sy) == (1.0, 1.0) else prediction.scaled(sx, sy)), decoded.width, decoded.height

    return infer


def image_path(root: Path, name: str) -> Path:
    """``root / name``, refused when ``name`` leads outside ``root`` (``..``, absolute paths, links)."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DatasetError(f"image {name!r} is outside the images folder")
    return path


@dataclass(frozen=True)
class Outcome:
    """One image's answer (``prediction`` None and ``error`` set when it could not be read)."""

    key: Any
    prediction: Prediction | None
    width: int = 0
    height: int = 0
    error: str | None = None


def run_images(
    root: Path, images: list[tuple[Any, str]], infer: Infer, on_image: Callable[[], None] | None = None
) -> Iterator[Outcome]:
    """For each ``(key, file name under root)``: the model's answer, or why the image failed (a
    missing or undecodable file does not stop the run). ``on_image`` is called after each image."""
    for key, name in images:
        try:
            data = image_path(root, name).read_bytes()
            prediction, width, height = infer(data)
            yield Outcome(key, prediction, width, height)
        except OSError as exc:
            yield Outcome(key, None, error=f"{name}: cannot read: {exc.strerror}")
        except InputError as exc:
            yield Outcome(key, None, error=f"{name}: {exc}")
        finally:
            if on_image is not None:
                on_image()


def coco_results(
    image_id: int, found: Detections, to_set: dict[int, int], size: tuple[int, int]
) -> list[dict[str, Any]]:
    """``found`` as COCO result rows against the set's category ids (classes the set does not name
    are left out): ``bbox`` ``[x, y, w, h]``, ``score``, and ``segmentation`` (RLE over the
    ``(width, height)`` image) and ``keypoints`` ``[x, y, score, ...]`` when the model gives them."""
    width, height = size
    rows = []
    for i in range(len(found)):
        category = to_set.get(int(found.class_id[i]))
        if category is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in found.xyxy[i])
        row: dict[str, Any] = {
            "image_id": image_id,
            "category_id": category,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(found.confidence[i]),
        }
        if found.masks is not None:
            row["segmentation"] = rle(found.mask_patch(i, height, width), height, width)
        if found.keypoints is not None:
            row["keypoints"] = [float(v) for v in found.keypoints[i].reshape(-1)]
        rows.append(row)
    return rows


def top_classes(prediction: Prediction) -> list[int]:
    """The class ids of a classification, best first (empty for detections)."""
    return [int(c) for c in prediction.class_id] if isinstance(prediction, Classifications) else []
