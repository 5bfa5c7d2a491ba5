"""A constant-velocity Kalman filter over boxes as ``cx, cy, a, h``, vectorised over tracks.

The state of a track is ``(cx, cy, a, h, vcx, vcy, va, vh)``: the box centre, its aspect ratio
``w / h``, its height and their velocities in pixels (or ratio) per frame. Noise scales with the
box height, as in SORT, DeepSORT and ByteTrack, so that one filter fits near and far objects.
All functions are pure: they take and return ``float64`` arrays, ``means (N, 8)`` and
``covariances (N, 8, 8)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]

_NDIM = 4
#: Standard deviations of position and velocity noise, as a fraction of the box height (ByteTrack's).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
#: The aspect ratio changes little: fixed noise rather than one scaled by the height (process noise of
#: the ratio and of its velocity, and measurement noise), ByteTrack's values.
_STD_ASPECT = 1e-2
_STD_ASPECT_VELOCITY = 1e-5
_STD_ASPECT_MEASURED = 1e-1

_MOTION = np.eye(2 * _NDIM)
_MOTION[:_NDIM, _NDIM:] = np.eye(_NDIM)
_OBSERVE = np.eye(_NDIM, 2 * _NDIM)


def xyxy_to_xyah(xyxy: npt.NDArray[np.floating]) -> Float64Array:
    """``(N, 4)`` boxes ``x1, y1, x2, y2`` as ``cx, cy, w / h, h`` (heights below 1e-6 count as 1e-6)."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: Float64Array) -> Float64Array:
    """The inverse of :func:`xyxy_to_xyah` on ``(N, >=4)`` rows (extra columns are ignored)."""
    cx, cy, a, h = xyah[:, 0], xyah[:, 1], xyah[:, 2], xyah[:, 3]
    w = a * h
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _diag(stds: Float64Array) -> Float64Array:
    """``(N, D)`` standard deviations as ``(N, D, D)`` diagonal covariances."""
    n, d = stds.shape
    out = np.zeros((n, d, d))
    out[:, np.arange(d), np.arange(d)] = stds**2
    return out


def _stds(h: Float64Array, scale: float, aspect: float) -> Float64Array:
    """``(N, 4)`` standard deviations: ``scale * h`` for cx, cy and h, ``aspect`` for the ratio."""
    return np.stack([scale * h, scale * h, np.full_like(h, aspect), scale * h], axis=1)


def initiate(measurements: Float64Array) -> tuple[Float64Array, Float64Array]:
    """New tracks at ``(N, 4)`` xyah measurements, at rest, with a wide velocity uncertainty."""
    means = np.concatenate([measurements, np.zeros_like(measurements)], axis=1)
    h = measurements[:, 3]
    stds = np.concatenate(
        [_stds(h, 2 * _STD_POSITION, _STD_ASPECT), _stds(h, 10 * _STD_VELOCITY, _STD_ASPECT_VELOCITY)], axis=1
    )
    return means, _diag(stds)


def predict(means: Float64Array, covariances: Float64Array) -> tuple[Float64Array, Float64Array]:
    """The states one frame later: ``x' = F x``, ``P' = F P F^T + Q``."""
    h = means[:, 3]
    noise = _diag(
        np.concatenate([_stds(h, _STD_POSITION, _STD_ASPECT), _stds(h, _STD_VELOCITY, _STD_ASPECT_VELOCITY)], 1)
    )
    return means @ _MOTION.T, _MOTION @ covariances @ _MOTION.T + noise


def update(
    means: Float64Array, covariances: Float64Array, measurements: Float64Array
) -> tuple[Float64Array, Float64Array]:
    """The states corrected by ``(N, 4)`` xyah measurements (one per track, same order)."""
    noise = _diag(_stds(means[:, 3], _STD_POSITION, _STD_ASPECT_MEASURED))
    projected_cov = _OBSERVE @ covariances @ _OBSERVE.T + noise
    # K = P H^T S^-1, solved rather than inverted: S is symmetric positive definite.
    cross = covariances @ _OBSERVE.T
    gain = np.linalg.solve(projected_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = measurements - means @ _OBSERVE.T
    new_means = means + np.einsum("nij,nj->ni", gain, innovation)
    new_covariances = covariances - gain @ projected_cov @ gain.transpose(0, 2, 1)
    return new_means, new_covariances
