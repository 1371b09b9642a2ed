"""A reference letterbox and parse in plain numpy, to test Vigil's preprocessors and parsers.

Written from the definition, sharing no code with Vigil: scale the frame by one factor
``r = min(W / w, H / h)`` to ``round(w·r) × round(h·r)`` (bilinear, half-pixel centres),
centre it in the ``W × H`` input (the odd padding pixel right / bottom), fill the rest with
the pad value; a box found in the input maps back by removing the offset and dividing by the
per-axis scale of the content.

The "model" of these tests finds the bright object of a :func:`scene` in the input tensor
(the box of pixels brighter than half-way between background and object) and writes it in the
output format of each parser, so a test runs preprocess → model → parse end to end and
compares the boxes with :func:`reference_boxes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.infer.model import ModelInfo
from vigil.infer.tensors import TensorSpec

BACKGROUND = 40
OBJECT = 220
PAD = 114
#: Input pixels brighter than this are the object (half-way from background to object, above
#: the pad value).
THRESHOLD = (BACKGROUND + OBJECT) / 2


@dataclass(frozen=True)
class Geometry:
    """The reference letterbox of a ``w × h`` frame into a ``W × H`` input."""

    left: int
    top: int
    width: int
    height: int


def geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Geometry:
    """Where the reference letterbox puts the frame."""
    r = min(dst_w / src_w, dst_h / src_h)
    w, h = round(src_w * r), round(src_h * r)
    return Geometry((dst_w - w) // 2, (dst_h - h) // 2, w, h)


def scene(width: int, height: int, rect: tuple[int, int, int, int]) -> np.ndarray:
    """An RGB frame of background with a solid object over ``rect`` (x0, y0, x1, y1),
    exclusive ends."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    x0, y0, x1, y1 = rect
    image[y0:y1, x0:x1] = OBJECT
    return image


def bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``(h, w, c)`` with half-pixel centres and edge clamping, in float64."""
    src_h, src_w = image.shape[:2]

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(f.astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, f - i0

    y0, y1, wy = taps(height, src_h)
    x0, x1, wx = taps(width, src_w)
    img = image.astype(np.float64)
    top = img[y0][:, x0] * (1 - wx)[None, :, None] + img[y0][:, x1] * wx[None, :, None]
    bottom = img[y1][:, x0] * (1 - wx)[None, :, None] + img[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def reference_letterbox(image: np.ndarray, dst_w: int, dst_h: int, pad: float) -> np.ndarray:
    """The letterboxed ``(H, W, 3)`` float64 input of an RGB frame."""
    g = geometry(image.shape[1], image.shape[0], dst_w, dst_h)
    out = np.full((dst_h, dst_w, 3), float(pad))
    out[g.top : g.top + g.height, g.left : g.left + g.width] = bilinear(image, g.width, g.height)
    return out


def find_object(model_input: np.ndarray) -> tuple[float, float, float, float]:
    """The "model": the box (x0, y0, x1, y1, exclusive ends) of the object in an
    ``(H, W, 3)`` input in pixel units."""
    ys, xs = np.nonzero(model_input.mean(axis=2) > THRESHOLD)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def reference_boxes(
    box: tuple[float, float, float, float], src_w: int, src_h: int, dst_w: int, dst_h: int
) -> np.ndarray:
    """The reference parse: a box in input pixels → source pixels (clipped), ``(1, 4)``."""
    g = geometry(src_w, src_h, dst_w, dst_h)
    x0, y0, x1, y1 = box
    sx, sy = src_w / g.width, src_h / g.height
    out = np.array([[(x0 - g.left) * sx, (y0 - g.top) * sy, (x1 - g.left) * sx, (y1 - g.top) * sy]])
    out[:, 0::2] = np.clip(out[:, 0::2], 0, src_w - 1)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, src_h - 1)
    return out


def _info(
    name: str, input_spec: TensorSpec, outputs: list[TensorSpec], parser: str, **params: str
) -> ModelInfo:
    return ModelInfo(
        name, "1", 8, [input_spec], outputs, parameters={"vigil.parser": parser, **params}
    )


def yolo_model(size: int = 640, **params: str) -> ModelInfo:
    """A YOLOv8-layout detector of one class, 8 candidates, ``3 × size × size`` input."""
    return _info(
        "yolo_lb",
        TensorSpec("images", np.dtype(np.float32), (3, size, size)),
        [TensorSpec("output0", np.dtype(np.float32), (5, 8))],
        "yolo",
        **params,
    )


def yolo_outputs(box: tuple[float, float, float, float]) -> dict[str, np.ndarray]:
    """One candidate: the box, score 0.9."""
    x0, y0, x1, y1 = box
    out = np.zeros((1, 5, 8), np.float32)
    out[0, :, 0] = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.9]
    return {"output0": out}


def yolo_seg_model(size: int = 640, **params: str) -> ModelInfo:
    """A YOLOv8-seg detector of one class, one mask coefficient, prototypes at a quarter of
    the input."""
    return _info(
        "yolo_seg_lb",
        TensorSpec("images", np.dtype(np.float32), (3, size, size)),
        [
            TensorSpec("output0", np.dtype(np.float32), (6, 8)),
            TensorSpec("output1", np.dtype(np.float32), (1, size // 4, size // 4)),
        ],
        "yolo_seg",
        **params,
    )


def yolo_seg_outputs(box: tuple[float, float, float, float], size: int) -> dict[str, np.ndarray]:
    """One candidate (coefficient 1) whose prototype is +10 inside the box, −10 outside."""
    x0, y0, x1, y1 = box
    det = np.zeros((1, 6, 8), np.float32)
    det[0, :, 0] = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.9, 1.0]
    centres = (np.arange(size // 4) + 0.5) * 4  # prototype pixel centres in input pixels
    inside_x = (centres >= x0) & (centres < x1)
    inside_y = (centres >= y0) & (centres < y1)
    proto = np.where(inside_y[:, None] & inside_x[None, :], 10.0, -10.0).astype(np.float32)
    return {"output0": det, "output1": proto[None, None]}


def detectnet_model(**params: str) -> ModelInfo:
    """A DetectNet_v2 detector of one class, ``3 × 544 × 960`` input, 34 × 60 grid."""
    return _info(
        "detectnet_lb",
        TensorSpec("input_1", np.dtype(np.float32), (3, 544, 960)),
        [
            TensorSpec("output_cov/Sigmoid", np.dtype(np.float32), (1, 34, 60)),
            TensorSpec("output_bbox/BiasAdd", np.dtype(np.float32), (4, 34, 60)),
        ],
        "detectnet_v2",
        **params,
    )


def detectnet_outputs(box: tuple[float, float, float, float]) -> dict[str, np.ndarray]:
    """The cell under the box centre covers it (coverage 0.9); stride 16, bbox_norm 35."""
    x0, y0, x1, y1 = box
    gx, gy = int((x0 + x1) / 2 // 16), int((y0 + y1) / 2 // 16)
    cx, cy = gx * 16 + 0.5, gy * 16 + 0.5
    cov = np.zeros((1, 1, 34, 60), np.float32)
    bbox = np.zeros((1, 4, 34, 60), np.float32)
    cov[0, 0, gy, gx] = 0.9
    bbox[0, :, gy, gx] = np.array([cx - x0, cy - y0, x1 - cx, y1 - cy]) / 35.0
    return {"output_cov/Sigmoid": cov, "output_bbox/BiasAdd": bbox}


def ssd_model(size: int = 300, **params: str) -> ModelInfo:
    """A TF-OD-API SSD detector with a ``size × size × 3`` uint8 input."""
    f32 = np.dtype(np.float32)
    return _info(
        "ssd_lb",
        TensorSpec("image_tensor", np.dtype(np.uint8), (size, size, 3)),
        [
            TensorSpec("detection_boxes", f32, (100, 4)),
            TensorSpec("detection_classes", f32, (100,)),
            TensorSpec("detection_scores", f32, (100,)),
            TensorSpec("num_detections", f32, (1,)),
        ],
        "ssd",
        **params,
    )


def ssd_outputs(box: tuple[float, float, float, float], size: int) -> dict[str, np.ndarray]:
    """One detection: the box normalized to the input (y1, x1, y2, x2), class 1, 0.9."""
    x0, y0, x1, y1 = box
    boxes = np.zeros((1, 100, 4), np.float32)
    boxes[0, 0] = np.array([y0, x0, y1, x1]) / size
    classes = np.zeros((1, 100), np.float32)
    classes[0, 0] = 1
    scores = np.zeros((1, 100), np.float32)
    scores[0, 0] = 0.9
    return {
        "detection_boxes": boxes,
        "detection_classes": classes,
        "detection_scores": scores,
        "num_detections": np.ones((1, 1), np.float32),
    }
