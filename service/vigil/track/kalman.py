"""A constant-velocity Kalman filter over boxes, vectorised over tracks, with time in seconds.

State per track: centre x, centre y, aspect ratio (w / h), height, and their rates per
second. Noise scales with the box height (as in SORT / ByteTrack), and process noise grows
with the elapsed time, so the same settings behave the same at 5 fps and at 60 fps and across
frames the model skipped.
"""

from __future__ import annotations

import numpy as np

_NDIM = 4
# Standard deviations relative to the box height: measurement and position noise, and the
# velocity random walk per second (ByteTrack's 1/20 and 1/160 per frame at 30 fps).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY_PER_S = 30.0 / 160
_MIN_DT_S = 1e-3
_H = np.eye(_NDIM, 2 * _NDIM)


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corner boxes → centre x, centre y, aspect (w / h), height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-3)
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xyah`."""
    h = np.maximum(xyah[:, 3], 1e-3)
    w = xyah[:, 2] * h
    return np.stack(
        [xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1
    )


def initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(N, 8)`` and covariance ``(N, 8, 8)`` of new tracks from ``(N, 4)`` xyah boxes."""
    n = len(measurement)
    mean = np.zeros((n, 2 * _NDIM))
    mean[:, :_NDIM] = measurement
    h = measurement[:, 3]
    std = np.stack(
        [
            2 * _STD_POSITION * h,
            2 * _STD_POSITION * h,
            np.full(n, 1e-2),
            2 * _STD_POSITION * h,
            10 * _STD_VELOCITY_PER_S * h,
            10 * _STD_VELOCITY_PER_S * h,
            np.full(n, 1e-3),
            10 * _STD_VELOCITY_PER_S * h,
        ],
        axis=1,
    )
    cov = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
    idx = np.arange(2 * _NDIM)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, dt_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Advance each track by its own ``dt_s`` (seconds, ``(N,)``)."""
    n = len(mean)
    if n == 0:
        return mean, cov
    dt = np.maximum(dt_s, _MIN_DT_S)
    h = mean[:, 3]
    # Position noise for the elapsed time, velocity as a random walk: variance ∝ dt.
    pos = (_STD_POSITION * h) ** 2 * np.minimum(dt * 30.0, 30.0)
    vel = (_STD_VELOCITY_PER_S * h) ** 2 * dt * 30.0
    diagonal = np.stack([pos, pos, 1e-4 * dt, pos, vel, vel, 1e-6 * dt, vel], axis=1)
    # F = [[I, dt·I], [0, I]], written out blockwise: far cheaper than batched matmuls.
    d = dt[:, None, None]
    mean = mean.copy()
    mean[:, :_NDIM] += mean[:, _NDIM:] * dt[:, None]
    a, b = cov[:, :_NDIM, :_NDIM], cov[:, :_NDIM, _NDIM:]
    c, dd = cov[:, _NDIM:, :_NDIM], cov[:, _NDIM:, _NDIM:]
    top_right = b + d * dd
    out = np.empty_like(cov)
    out[:, :_NDIM, :_NDIM] = a + d * c + d * top_right
    out[:, :_NDIM, _NDIM:] = top_right
    out[:, _NDIM:, :_NDIM] = c + d * dd
    out[:, _NDIM:, _NDIM:] = dd
    idx = np.arange(2 * _NDIM)
    out[:, idx, idx] += diagonal
    return mean, out


def update(
    mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``(M, 8)`` states with ``(M, 4)`` xyah measurements."""
    if len(mean) == 0:
        return mean, cov
    h = mean[:, 3]
    r_std = np.stack(
        [_STD_POSITION * h, _STD_POSITION * h, np.full(len(h), 1e-1), _STD_POSITION * h], axis=1
    )
    r = np.zeros((len(h), _NDIM, _NDIM))
    idx = np.arange(_NDIM)
    r[:, idx, idx] = r_std**2
    projected_cov = cov[:, :_NDIM, :_NDIM] + r
    cross = cov[:, :, :_NDIM]  # P Hᵀ
    gain = np.linalg.solve(projected_cov, np.transpose(cross, (0, 2, 1)))  # (M, 4, 8)
    gain = np.transpose(gain, (0, 2, 1))  # K = P Hᵀ S⁻¹, (M, 8, 4)
    innovation = measurement - mean[:, :_NDIM]
    mean = mean + (gain @ innovation[:, :, None])[:, :, 0]
    cov = cov - gain @ np.transpose(cross, (0, 2, 1))
    return mean, cov
