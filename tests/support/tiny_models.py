"""Tiny ONNX models with known outputs, for parser and secondary-model tests.

Each detector's output is ``C + mean(image) · G``: a constant table ``C`` (the candidates a
test expects) plus a *gate* table ``G`` times the mean of the input image (in [0, 1] after
Vigil's preprocessing). ``G`` is non-zero only for one candidate's score, so that candidate
appears on a white frame and not on a black one: the batch dimension is real and a parser
that mixed up the frames of a batch would fail.

:func:`write_repository` writes them as a Triton model repository (``config.pbtxt``,
``1/model.onnx``, ``labels.txt``) that the embedded Triton serves through the materializer,
exactly as a user's ``onnxruntime_onnx`` model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what the onnxruntime in Triton's python-env and in the venv both read


@dataclass
class TinyModel:
    """A test model: name, image input, constant + gated outputs, config parameters.

    Attributes:
        name: Model name.
        input_shape: Image input without batch: ``(3, H, W)`` float or ``(H, W, 3)`` uint8.
        outputs: Output name → ``(C, G)`` tables of one image (same shape each).
        parameters: ``vigil.*`` config parameters.
        labels: Lines of ``labels.txt`` (none written when empty).
        graph: A custom graph builder instead of ``C + mean · G`` (classifiers).
    """

    name: str
    input_shape: tuple[int, ...]
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    max_batch_size: int = 8
    graph: onnx.GraphProto | None = None

    @property
    def input_name(self) -> str:
        return "images"

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.input_shape[-1] == 3 else np.float32)

    def expected(self, image_mean: float) -> dict[str, np.ndarray]:
        """Outputs of one image whose (preprocessed) mean is ``image_mean``."""
        return {n: (c + image_mean * g).astype(np.float32) for n, (c, g) in self.outputs.items()}


def _mean_graph(model: TinyModel) -> onnx.GraphProto:
    rank = len(model.input_shape)
    nodes = []
    source = model.input_name
    if model.input_dtype != np.float32:
        nodes.append(helper.make_node("Cast", [source], ["as_float"], to=TensorProto.FLOAT))
        nodes.append(
            helper.make_node("Mul", ["as_float", "inv255"], ["scaled"])
        )  # uint8 input: mean in [0, 1] as for float inputs
        source = "scaled"
    nodes.append(
        helper.make_node("ReduceMean", [source], ["mean"], axes=list(range(1, rank + 1)))
    )  # (B, 1, ..., 1)
    nodes.append(helper.make_node("Reshape", ["mean", "batch_only"], ["mean_b"]))  # (B,)
    inits = [numpy_helper.from_array(np.array([-1], np.int64), "batch_only")]
    if model.input_dtype != np.float32:
        inits.append(numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"))
    outputs = []
    for name, (const, gate) in model.outputs.items():
        shape_name = f"{name}_bshape"
        inits += [
            numpy_helper.from_array(const.astype(np.float32), f"{name}_C"),
            numpy_helper.from_array(gate.astype(np.float32), f"{name}_G"),
            numpy_helper.from_array(np.array([-1] + [1] * const.ndim, np.int64), shape_name),
        ]
        nodes += [
            helper.make_node("Reshape", ["mean_b", shape_name], [f"{name}_m"]),
            helper.make_node("Mul", [f"{name}_m", f"{name}_G"], [f"{name}_gated"]),
            helper.make_node("Add", [f"{name}_gated", f"{name}_C"], [name]),
        ]
        outputs.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *const.shape])
        )
    return helper.make_graph(
        nodes,
        model.name,
        [_input_info(model)],
        outputs,
        initializer=inits,
    )


def _input_info(model: TinyModel) -> onnx.ValueInfoProto:
    elem = TensorProto.FLOAT if model.input_dtype == np.float32 else TensorProto.UINT8
    return helper.make_tensor_value_info(model.input_name, elem, ["batch", *model.input_shape])


def to_onnx(model: TinyModel) -> onnx.ModelProto:
    """The model as a checked ONNX model."""
    graph = model.graph or _mean_graph(model)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _config(model: TinyModel, outputs: dict[str, tuple[int, ...]]) -> str:
    dtype = "TYPE_FP32" if model.input_dtype == np.float32 else "TYPE_UINT8"
    lines = [
        f'name: "{model.name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {model.max_batch_size}",
        f'input [ {{ name: "{model.input_name}" data_type: {dtype} '
        f"dims: {list(model.input_shape)} }} ]",
        "output [",
        ",\n".join(
            f'  {{ name: "{name}" data_type: TYPE_FP32 dims: {list(shape)} }}'
            for name, shape in outputs.items()
        ),
        "]",
        "dynamic_batching { max_queue_delay_microseconds: 1000 }",
        "instance_group [ { count: 1 kind: KIND_CPU } ]",
    ]
    params = dict(model.parameters)
    if model.labels:
        params["vigil.labels"] = "labels.txt"
    for key, value in params.items():
        lines.append(f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


def write_model(repository: Path, model: TinyModel) -> Path:
    """Write ``model`` into ``repository/<name>/`` (config, version 1, labels)."""
    proto = to_onnx(model)
    outputs = {
        o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim[1:])
        for o in proto.graph.output
    }
    directory = repository / model.name
    (directory / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(proto, directory / "1" / "model.onnx")
    (directory / "config.pbtxt").write_text(_config(model, outputs))
    if model.labels:
        (directory / "labels.txt").write_text("\n".join(model.labels) + "\n")
    return directory


def write_repository(repository: Path, models: list[TinyModel]) -> Path:
    """Write every model into ``repository``; returns it."""
    repository.mkdir(parents=True, exist_ok=True)
    for model in models:
        write_model(repository, model)
    return repository


# --- the test models --------------------------------------------------------------------------

LABELS = ["person", "car", "dog"]


def yolo_v8_model() -> TinyModel:
    """YOLOv8 layout ``[4 + 3, 16]``, input 3×64×64 float.

    On a white frame (mean 1) after NMS at IoU 0.45 and confidence 0.4, in input pixels:
    person 0.9 ``[15, 15, 25, 25]``, car 0.7 ``[16, 16, 26, 26]`` (same place as a
    suppressed person 0.8, but another class), dog 0.6 ``[46, 6, 54, 14]`` (gated: absent on
    a black frame). A dog at 0.2 and a 0.3 candidate fall under the threshold.
    """
    const = np.zeros((7, 16), np.float32)
    gate = np.zeros_like(const)
    const[:, 0] = [20, 20, 10, 10, 0.9, 0.05, 0.0]
    const[:, 1] = [21, 21, 10, 10, 0.8, 0.0, 0.0]
    const[:, 2] = [21, 21, 10, 10, 0.0, 0.7, 0.0]
    const[:, 3] = [40, 40, 16, 8, 0.0, 0.0, 0.2]
    const[:, 4] = [50, 10, 8, 8, 0.0, 0.0, 0.0]
    gate[6, 4] = 0.6
    const[:, 5] = [10, 50, 4, 4, 0.3, 0.3, 0.3]
    return TinyModel(
        "tiny_yolo_v8", (3, 64, 64), {"output0": (const, gate)}, {"vigil.parser": "yolo"}, LABELS
    )


def yolo_v5_model() -> TinyModel:
    """The same objects as :func:`yolo_v8_model` in the YOLOv5 layout ``[16, 5 + 3]``,
    with objectness × class score giving the same scores."""
    v8 = yolo_v8_model()
    const8, gate8 = v8.outputs["output0"]
    const = np.zeros((16, 8), np.float32)
    gate = np.zeros_like(const)
    const[:, :4] = const8[:4].T
    const[:, 4] = 0.5  # objectness: class scores doubled below, so products stay the same
    const[:, 5:] = const8[4:].T * 2
    gate[:, 5:] = gate8[4:].T * 2
    return TinyModel(
        "tiny_yolo_v5",
        (3, 64, 64),
        {"output0": (const, gate)},
        {"vigil.parser": "yolo", "vigil.yolo_layout": "v5"},
        LABELS,
    )


YOLO_WHITE = (  # (class, score, input-pixel box) expected on a white frame, best first
    (0, 0.9, (15, 15, 25, 25)),
    (1, 0.7, (16, 16, 26, 26)),
    (2, 0.6, (46, 6, 54, 14)),
)


def detectnet_model() -> TinyModel:
    """DetectNet_v2 grids for 2 classes on a 3×64×128 input (stride 16: grid 4×8).

    Candidates (input pixels, cell centre ``x·16 + 0.5``): person 0.9 at cell (1, 2)
    ``[22.5, 8.5, 44.5, 30.5]``; person 0.6 at cell (1, 3) ``[24.5, 8.5, 44.5, 30.5]``
    (overlaps the first: suppressed by NMS, merged by DBSCAN); car 0.8 at cell (3, 6)
    ``[90.5, 42.5, 102.5, 54.5]``; a car at 0.3 (under the threshold); person gated 0.7 at
    cell (2, 5) ``[75.5, 27.5, 85.5, 37.5]``.
    """
    cov = np.zeros((2, 4, 8), np.float32)
    cov_gate = np.zeros_like(cov)
    bbox = np.zeros((8, 4, 8), np.float32)

    def put(c: int, y: int, x: int, box: tuple[float, ...]) -> None:
        cx, cy = x * 16 + 0.5, y * 16 + 0.5
        left, top, right, bottom = box
        bbox[4 * c : 4 * c + 4, y, x] = (
            np.array([cx - left, cy - top, right - cx, bottom - cy]) / 35
        )

    cov[0, 1, 2] = 0.9
    put(0, 1, 2, (22.5, 8.5, 44.5, 30.5))
    cov[0, 1, 3] = 0.6
    put(0, 1, 3, (24.5, 8.5, 44.5, 30.5))
    cov[1, 3, 6] = 0.8
    put(1, 3, 6, (90.5, 42.5, 102.5, 54.5))
    cov[1, 0, 0] = 0.3
    put(1, 0, 0, (0.5, 0.5, 10.5, 10.5))
    cov_gate[0, 2, 5] = 0.7
    put(0, 2, 5, (75.5, 27.5, 85.5, 37.5))
    return TinyModel(
        "tiny_detectnet",
        (3, 64, 128),
        {
            "output_cov/Sigmoid": (cov, cov_gate),
            "output_bbox/BiasAdd": (bbox, np.zeros_like(bbox)),
        },
        {"vigil.parser": "detectnet_v2"},
        LABELS[:2],
    )


DETECTNET_WHITE_NMS = (
    (0, 0.9, (22.5, 8.5, 44.5, 30.5)),
    (1, 0.8, (90.5, 42.5, 102.5, 54.5)),
    (0, 0.7, (75.5, 27.5, 85.5, 37.5)),
)


def yolo_seg_model() -> TinyModel:
    """YOLOv8-seg layout: detections ``[4 + 2 + 2, 16]`` and prototypes ``[2, 16, 16]`` for
    a 3×64×64 input.

    Prototype 0 is +10 on the band of rows 6–13 and −10 elsewhere; prototype 1 is +10 on the
    band of columns 10–15. Person 0.9 (box ``[8, 16, 40, 64]``) takes prototype 0, car 0.8
    (box ``[36, 4, 60, 24]``) prototype 1; each band runs past its box and is cut there (bands,
    not blobs, so the bilinear upsampling leaves exact rectangles: it rounds a blob's
    corners). On a 128×128 frame (8 source pixels per prototype cell) the masks are the
    source rectangles x 16–79, y 48–111 (person) and x 80–119, y 8–47 (car).
    """
    det = np.zeros((8, 16), np.float32)
    det[:, 0] = [24, 40, 32, 48, 0.9, 0.0, 1.0, 0.0]
    det[:, 1] = [48, 14, 24, 20, 0.0, 0.8, 0.0, 1.0]
    protos = np.full((2, 16, 16), -10.0, np.float32)
    protos[0, 6:14, :] = 10
    protos[1, :, 10:16] = 10
    return TinyModel(
        "tiny_yolo_seg",
        (3, 64, 64),
        {"output0": (det, np.zeros_like(det)), "output1": (protos, np.zeros_like(protos))},
        {"vigil.parser": "yolo_seg"},
        LABELS[:2],
    )


# (class, score, source box on a 128×128 frame, mask rectangle x0, y0, x1, y1 inclusive)
YOLO_SEG_128 = (
    (0, 0.9, (16, 32, 80, 127), (16, 48, 79, 111)),
    (1, 0.8, (72, 8, 120, 48), (80, 8, 119, 47)),
)


def color_classifier_model(name: str = "tiny_color") -> TinyModel:
    """A classifier on 3×16×16 float crops: probabilities of ``red``, ``green``, ``blue`` are
    the softmax of 20 × the mean of each channel, so a crop's dominant color wins."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
            helper.make_node("Mul", ["means", "gain"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(np.array(20.0, np.float32), "gain")],
    )
    return TinyModel(
        name,
        (3, 16, 16),
        parameters={"vigil.parser": "classifier"},
        labels=["red", "green", "blue"],
        graph=graph,
    )
