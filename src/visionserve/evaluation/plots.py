"""A precision-recall curve as a PNG, drawn with OpenCV (no plotting library on a server)."""

from __future__ import annotations

import cv2
import numpy as np

from visionserve.errors import InferenceError
from visionserve.evaluation.metrics import Curve

WIDTH, HEIGHT = 640, 480
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 70, 30, 50, 60
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GRID = (225, 225, 225)
_INK = (40, 40, 40)
_CURVE = (200, 110, 20)  # BGR
_BEST = (40, 40, 220)


def _to_pixel(recall: float, precision: float) -> tuple[int, int]:
    plot_w = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_h = HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
    return round(_MARGIN_LEFT + recall * plot_w), round(HEIGHT - _MARGIN_BOTTOM - precision * plot_h)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    cv2.putText(image, text, origin, _FONT, scale, _INK, 1, cv2.LINE_AA)


def _axes(image: np.ndarray) -> None:
    for step in range(11):
        value = step / 10
        x, _ = _to_pixel(value, 0.0)
        _, y = _to_pixel(0.0, value)
        cv2.line(image, (x, _MARGIN_TOP), (x, HEIGHT - _MARGIN_BOTTOM), _GRID, 1)
        cv2.line(image, (_MARGIN_LEFT, y), (WIDTH - _MARGIN_RIGHT, y), _GRID, 1)
        if step % 2 == 0:
            cv2.putText(
                image, f"{value:.1f}", (x - 12, HEIGHT - _MARGIN_BOTTOM + 20), _FONT, 0.45, _INK, 1, cv2.LINE_AA
            )
            cv2.putText(image, f"{value:.1f}", (_MARGIN_LEFT - 40, y + 5), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    cv2.rectangle(image, _to_pixel(0.0, 1.0), _to_pixel(1.0, 0.0), _INK, 1)
    cv2.putText(image, "recall", (WIDTH // 2 - 25, HEIGHT - 15), _FONT, 0.55, _INK, 1, cv2.LINE_AA)
    cv2.putText(image, "precision", (5, _MARGIN_TOP - 6), _FONT, 0.55, _INK, 1, cv2.LINE_AA)


def pr_curve_png(label: str, curve: Curve, ap50: float | None) -> bytes:
    """The curve of ``label`` (precision against recall at IoU 0.50, one step per detection, the
    F1-optimal point marked) as PNG bytes."""
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    _axes(image)
    title = f"{label}: {curve.objects} objects, AP50 {'-' if ap50 is None else f'{ap50:.3f}'}"
    cv2.putText(image, title[:70], (_MARGIN_LEFT, 22), _FONT, 0.6, _INK, 1, cv2.LINE_AA)
    if len(curve.scores):
        points = [_to_pixel(0.0, float(curve.precision[0]))]
        points += [_to_pixel(float(r), float(p)) for r, p in zip(curve.recall, curve.precision, strict=True)]
        cv2.polylines(image, [np.array(points, np.int32)], False, _CURVE, 2, cv2.LINE_AA)
    best = curve.best()
    if best is not None:
        threshold, f1, precision, recall = best
        point = _to_pixel(recall, precision)
        cv2.circle(image, point, 6, _BEST, -1, cv2.LINE_AA)
        note = f"best F1 {f1:.3f} at conf {threshold:.4f}"
        y = point[1] - 12 if point[1] - 12 > _MARGIN_TOP + 15 else point[1] + 24  # below the point near the top
        cv2.putText(image, note, (max(_MARGIN_LEFT + 5, point[0] - 240), y), _FONT, 0.5, _BEST, 1, cv2.LINE_AA)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise InferenceError("cannot encode the precision-recall plot as PNG")
    return bytes(buffer.tobytes())
