"""A constant-velocity Kalman filter over boxes, for all tracks of a stream at once, in seconds.

State per track: centre x, centre y, aspect ratio (w / h), height, and their rates per
second. Noise scales with the box height (as in SORT / ByteTrack), and process noise grows
with the elapsed time, so the same settings behave the same at 5 fps and at 60 fps and across
frames the model skipped.

**Layout.** The four coordinates never mix: the transition, both noises and the measurement
treat each on its own, so of the usual 8×8 covariance only each coordinate's 2×2 block
(position, velocity) is ever non-zero — the entries between coordinates stay exactly 0. A
stream's whole filter is therefore one ``(6, 4, N)`` array: the quantities :data:`POS`,
:data:`PP`, :data:`PV`, :data:`VEL`, :data:`VP`, :data:`VV`, then the coordinate, then the
track. Tracks last, so every operation runs over contiguous rows of N numbers (small inner
dimensions are what makes NumPy slow on small arrays); the quantities in this order, so the
transition of every track, mean and covariance, is four array operations. PV and VP are kept
apart although equal in exact arithmetic, because the update rounds them differently; with
both kept, every number is the one the 8×8 formulation computed (the same operations in the
same order; tests/unit/test_tracker_equivalence.py holds it to that). Boxes are
coordinate-major too: ``(4, N)``.
"""

from __future__ import annotations

from typing import Final

import numpy as np

POS: Final = 0
"""Index of the mean position (x, y, aspect, height)."""
PP: Final = 1
"""Index of the position variance."""
PV: Final = 2
"""Index of the position–velocity covariance."""
VEL: Final = 3
"""Index of the mean velocity (per second)."""
VP: Final = 4
"""Index of the velocity–position covariance."""
VV: Final = 5
"""Index of the velocity variance."""

# Standard deviations relative to the box height: measurement and position noise, and the
# velocity random walk per second (ByteTrack's 1/20 and 1/160 per frame at 30 fps).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY_PER_S = 30.0 / 160
_MIN_DT_S = 1e-3
_NOISE_STD = np.array([[_STD_POSITION], [_STD_VELOCITY_PER_S]])  # position, velocity
_INITIAL_STD = np.array([[2 * _STD_POSITION], [10 * _STD_VELOCITY_PER_S]])
# Fixed variances of the aspect ratio, squared the way its standard deviations were before.
_INITIAL_ASPECT_VAR = np.array([[1e-2 * 1e-2], [1e-3 * 1e-3]])
_MEASURED_ASPECT_VAR = 1e-1 * 1e-1
# The aspect ratio's process noise per second (position, velocity): a constant, so a predict
# step makes no array for it.
_ASPECT_NOISE_PER_S = np.array([[1e-4], [1e-6]])


def empty() -> np.ndarray:
    """The state of no tracks."""
    return np.zeros((6, 4, 0))


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(4, N)`` corner boxes → centre x, centre y, aspect (w / h), height, ``(4, N)``."""
    wh = xyxy[2:] - xyxy[:2]
    np.maximum(wh[1], 1e-3, out=wh[1])
    out = np.empty((4, len(wh[0])))
    np.add(xyxy[:2], wh / 2, out=out[:2])
    np.divide(wh[0], wh[1], out=out[2])
    out[3] = wh[1]
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xyah`, ``(4, N)`` → ``(4, N)``."""
    half = np.empty((2, len(xyah[0])))
    np.maximum(xyah[3], 1e-3, out=half[1])
    np.multiply(xyah[2], half[1], out=half[0])
    half /= 2
    return np.concatenate([xyah[:2] - half, xyah[:2] + half])


def initiate(measurement: np.ndarray) -> np.ndarray:
    """The ``(6, 4, N)`` states of new tracks from ``(4, N)`` xyah boxes (at rest)."""
    state = np.zeros((6, 4, len(measurement[0])))
    state[POS] = measurement
    variance = np.square(measurement[3] * _INITIAL_STD)  # (2, N): position, velocity
    state[PP::4] = variance[:, None]
    state[PP::4, 2] = _INITIAL_ASPECT_VAR
    return state


def predict(state: np.ndarray, dt_s: float | np.ndarray) -> None:
    """Advance every track of ``state`` (``(6, 4, N)``, in place) by ``dt_s`` seconds: one
    number for all, or ``(N,)``, one per track (tracks of several streams at once)."""
    dt = np.maximum(dt_s, _MIN_DT_S)
    # Process noise from the height before the step: position for the elapsed time (capped
    # at a second's worth), velocity as a random walk; variances ∝ dt.
    noise = np.square(state[POS, 3] * _NOISE_STD)  # (2, N)
    noise[0] *= np.minimum(dt * 30.0, 30.0)
    noise[1] *= dt
    noise[1] *= 30.0
    # F = [[1, dt], [0, 1]] per coordinate. x' = F x and F P: POS, PP, PV += dt · VEL, VP, VV;
    # then (F P) Fᵀ: PP, VP += dt · PV, VV.
    state[POS:VEL] += dt * state[VEL:]
    state[PP::3] += dt * state[PV::3]
    state[PP::4, :2] += noise[:, None]  # x, y: relative to the height
    state[PP::4, 3] += noise  # height
    state[PP::4, 2] += _ASPECT_NOISE_PER_S * dt  # aspect: fixed


def update(state: np.ndarray, measurement: np.ndarray) -> None:
    """Correct ``(6, 4, M)`` states (in place) with ``(4, M)`` xyah measurements."""
    # S = H P Hᵀ + R, with R from the predicted height, is diagonal.
    s = np.empty_like(measurement)
    s[:] = np.square(_STD_POSITION * state[POS, 3])
    s[2] = _MEASURED_ASPECT_VAR
    s += state[PP]
    # K = P Hᵀ S⁻¹ is then a product with 1 / S. Times the reciprocal, not divided by S:
    # LAPACK's solve (OpenBLAS), which the 8×8 form used, does that, and so every bit of
    # its results is kept.
    np.divide(1.0, s, out=s)
    gain = state[PP::3] * s  # (2, 4, M): position, velocity
    # P -= K H P: PP, PV -= K_pos · (PP, VP); VP, VV -= K_vel · (PP, VP). Both products
    # from the covariance before the update.
    correction_pos = gain[0] * state[PP::3]
    correction_vel = gain[1] * state[PP::3]
    gain *= measurement - state[POS]  # K times the innovation
    state[POS::3] += gain
    state[PP:VEL] -= correction_pos
    state[VP:] -= correction_vel
