"""Secondary inference: classifiers on crops of primary detections (DeepStream's SGIE).

After the primary model's outputs are parsed, each configured classifier

1. picks the objects it operates on: primary classes in ``operate_on_classes``, at least
   ``min_size_px`` wide and high, in frames that are due (every ``interval``-th frame of a
   stream);
2. crops them from the decoded frames, resizes each crop to the classifier's input and
   writes the crops of the **whole primary batch, all streams together**, into one
   shared-memory slot: one Triton request per primary batch (more only when the crops
   exceed ``max_batch``);
3. turns each crop's top-1 class into object attributes: ``{attribute: label,
   attribute + "Confidence": "0.873"}`` in ``Detections.data["attributes"]``, which the event
   builder puts in the object's class sub-object (where DeepStream puts secondary-classifier
   results; a ``color`` attribute fills a vehicle's ``color``).

On frames between due frames, an object reuses the last result of its stream: the same
track id when a tracker assigns them, else the best-overlapping box (IoU ≥ 0.5) of the same
class. A failed classifier request loses only the attributes of that batch (logged and
counted in :attr:`SecondaryClassifier.failures`); the detections still become events.

Classifier model config parameters: ``vigil.labels`` (class names) and
``vigil.classifier_activation``: ``none`` (outputs are probabilities; default), ``softmax``
or ``sigmoid`` (outputs are logits).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from vigil.config import SecondaryModelSettings
from vigil.detections import ATTRIBUTES, Detections, iou_matrix
from vigil.frame import Frame
from vigil.infer.client import TritonClient
from vigil.infer.errors import InferError, UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import SystemShmRing
from vigil.infer.tensors import InputFormat, Layout
from vigil.parsers.base import model_param
from vigil.shm_segments import new_prefix

log = logging.getLogger(__name__)

_ACTIVATIONS = ("none", "softmax", "sigmoid")
_CARRY_IOU = 0.5
_REMEMBERED_STREAMS = 4096  # bounded: streams come and go


@dataclass
class _Remembered:
    """The last classified objects of a stream, for the frames in between."""

    xyxy: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None
    attributes: list[dict[str, str]]


class SecondaryClassifier:
    """One classifier model on crops of selected primary detections.

    Args:
        client: Connection to Triton.
        model: The loaded classifier (one image input, one score output).
        primary: The primary model (its labels name the classes to operate on).
        settings: Which objects, how often, batch size, threshold.

    Raises:
        UnsupportedModelError: the classifier's tensors or parameters do not fit, or an
            ``operate_on_classes`` name is not a primary label.
    """

    def __init__(
        self,
        client: TritonClient,
        model: ModelInfo,
        primary: ModelInfo,
        settings: SecondaryModelSettings,
    ) -> None:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise UnsupportedModelError(
                f"secondary model {model.name!r} must have one image input and one score "
                f"output; it has {len(model.inputs)} inputs and {len(model.outputs)} outputs"
            )
        if model.max_batch_size < 1:
            raise UnsupportedModelError(
                f"secondary model {model.name!r} must batch (max_batch_size >= 1): crops of "
                "a whole primary batch go in one request"
            )
        self.client = client
        self.model = model
        self.settings = settings
        self.attribute = settings.attribute_name
        self.format = InputFormat.from_tensor(model.inputs[0])
        self.input = model.inputs[0].name
        self.output = model.outputs[0].name
        self.activation = model_param(
            model, "vigil.classifier_activation", str, "none",
            lambda v: v in _ACTIVATIONS, f"one of {list(_ACTIVATIONS)}",
        )  # fmt: skip
        self.max_batch = min(settings.max_batch, model.max_batch_size)
        self.class_ids = self._class_ids(primary, settings.operate_on_classes)
        self.failures = 0
        self.requests = 0
        self._ring: SystemShmRing | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secondary")
        self._remembered: OrderedDict[str, _Remembered] = OrderedDict()

    @staticmethod
    def _class_ids(primary: ModelInfo, names: Sequence[str]) -> np.ndarray | None:
        if not names:
            return None
        by_label = {primary.label(i): i for i in range(max(len(primary.labels), 1))}
        unknown = [n for n in names if n not in by_label]
        if unknown:
            known = sorted(n for n in by_label if not n.startswith("class_"))
            raise UnsupportedModelError(
                f"operate_on_classes {unknown} are not classes of model {primary.name!r} "
                f"(it has {known[:20]}{'...' if len(known) > 20 else ''})"
            )
        return np.array(sorted({by_label[n] for n in names}), np.int32)

    async def start(self) -> None:
        """Create and register the classifier's shared-memory slot (done by the first
        :meth:`classify` if not before, so nothing is allocated until frames flow).

        Raises:
            InferError: Triton cannot map the shared memory.
        """
        self._ring = SystemShmRing(
            new_prefix("sgie"), 1, self.max_batch, self.model.inputs, self.model.outputs
        )
        try:
            for slot in self._ring.slots:
                await self.client.register_slot(slot)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Unregister and remove the slot; idempotent."""
        if self._ring is not None:
            for slot in self._ring.slots:
                await self.client.unregister_slot(slot)
            self._ring.close()
            self._ring = None
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def classify(
        self,
        frames: Sequence[Frame],
        detections: Sequence[Detections],
        every_frame: bool = False,
    ) -> list[Detections]:
        """Add this classifier's attributes to the detections of a primary batch.

        ``every_frame``: classify the objects of every frame, ignoring ``interval`` (the
        tracked path, which hands over only tracks not yet classified).

        Raises:
            InferError: the classifier request failed (the caller keeps the detections).
        """
        attributes = [_attribute_column(d) for d in detections]
        eligible = [np.flatnonzero(self._eligible(d)) for d in detections]
        crops = [  # (frame index, row) of every object to classify in the batch
            (i, int(row))
            for i, frame in enumerate(frames)
            if every_frame or self._due(frame)
            for row in eligible[i]
        ]
        for start in range(0, len(crops), self.max_batch):
            chunk = crops[start : start + self.max_batch]
            results = await self._infer(frames, detections, chunk)
            for (i, row), attrs in zip(chunk, results, strict=True):
                attributes[i][row] = {**attributes[i][row], **attrs}
        # In frame order, so a frame between due frames uses the latest earlier result
        # even when both are in this batch.
        for i, (frame, dets) in enumerate(zip(frames, detections, strict=True)):
            if every_frame:
                break
            if not self._due(frame):
                self._carry_over(frame, dets, eligible[i], attributes[i])
            elif self.settings.interval > 1:
                self._remember(frame.stream_id, dets, attributes[i])
        return [
            Detections(d.xyxy, d.confidence, d.class_id, d.tracker_id, {**d.data, ATTRIBUTES: a})
            for d, a in zip(detections, attributes, strict=True)
        ]

    def _eligible(self, dets: Detections) -> np.ndarray:
        size = self.settings.min_size_px
        wide = (dets.xyxy[:, 2] - dets.xyxy[:, 0] >= size) & (
            dets.xyxy[:, 3] - dets.xyxy[:, 1] >= size
        )
        if self.class_ids is None:
            return wide
        return wide & np.isin(dets.class_id, self.class_ids)

    def _due(self, frame: Frame) -> bool:
        return frame.frame_number % self.settings.interval == 0

    async def _infer(
        self,
        frames: Sequence[Frame],
        detections: Sequence[Detections],
        chunk: list[tuple[int, int]],
    ) -> list[dict[str, str]]:
        if self._ring is None:
            await self.start()
        assert self._ring is not None
        slot = await self._ring.acquire()
        try:
            loop = asyncio.get_running_loop()
            images = [(frames[i].image, detections[i].xyxy[row]) for i, row in chunk]
            await loop.run_in_executor(
                self._executor, self._write_crops, images, slot.inputs[self.input]
            )
            self.requests += 1
            await self.client.infer(self.model, slot, len(chunk))
            scores = (
                slot.outputs[self.output][: len(chunk)].reshape(len(chunk), -1).astype(np.float32)
            )
        finally:
            self._ring.release(slot)
        probs = _activate(scores, self.activation)
        best = probs.argmax(axis=1)
        result = []
        for k, cls in enumerate(best):
            p = float(probs[k, cls])
            if p < self.settings.confidence_threshold:
                result.append({})
                continue
            result.append(
                {
                    self.attribute: self.model.label(int(cls)),
                    f"{self.attribute}Confidence": f"{p:.3f}",
                }
            )
        return result

    def _write_crops(self, crops: list[tuple[np.ndarray, np.ndarray]], out: np.ndarray) -> None:
        """Crop, resize and lay out each object into ``out[k]`` (runs in a worker thread)."""
        fmt = self.format
        for k, (image, box) in enumerate(crops):
            height, width = image.shape[:2]
            x1, y1 = int(max(0, box[0])), int(max(0, box[1]))
            x2 = int(min(width, max(x1 + 1, np.ceil(box[2]))))
            y2 = int(min(height, max(y1 + 1, np.ceil(box[3]))))
            resized = cv2.resize(
                image[y1:y2, x1:x2], (fmt.width, fmt.height), interpolation=cv2.INTER_LINEAR
            )
            if fmt.layout is Layout.CHW:
                resized = resized.transpose(2, 0, 1)
            np.multiply(resized, fmt.scale, out=out[k], casting="unsafe")

    def _carry_over(
        self, frame: Frame, dets: Detections, rows: np.ndarray, column: np.ndarray
    ) -> None:
        last = self._remembered.get(frame.stream_id)
        if last is None or not len(rows) or not len(last.xyxy):
            return
        if dets.tracker_id is not None and last.tracker_id is not None:
            index = {int(t): k for k, t in enumerate(last.tracker_id)}
            for row in rows:
                k = index.get(int(dets.tracker_id[row]))
                if k is not None:
                    column[row] = {**column[row], **last.attributes[k]}
            return
        overlap = iou_matrix(dets.xyxy[rows], last.xyxy)
        overlap[dets.class_id[rows][:, None] != last.class_id[None, :]] = 0
        for n, row in enumerate(rows):
            k = int(overlap[n].argmax())
            if overlap[n, k] >= _CARRY_IOU:
                column[row] = {**column[row], **last.attributes[k]}

    def _remember(self, stream_id: str, dets: Detections, column: np.ndarray) -> None:
        mine = {self.attribute, f"{self.attribute}Confidence"}
        self._remembered[stream_id] = _Remembered(
            dets.xyxy.copy(),
            dets.class_id.copy(),
            None if dets.tracker_id is None else dets.tracker_id.copy(),
            [{k: v for k, v in attrs.items() if k in mine} for attrs in column],
        )
        self._remembered.move_to_end(stream_id)
        while len(self._remembered) > _REMEMBERED_STREAMS:
            self._remembered.popitem(last=False)


class SecondaryClassifiers:
    """The configured classifiers, run one after another on each primary batch.

    Args:
        classifiers: The classifiers, in the order they run.
    """

    def __init__(self, classifiers: Sequence[SecondaryClassifier]) -> None:
        self.classifiers = list(classifiers)

    async def run(
        self, frames: Sequence[Frame], detections: list[Detections], every_frame: bool = False
    ) -> list[Detections]:
        """Detections of a primary batch with every classifier's attributes added.

        A classifier whose request fails leaves its attributes out for this batch.
        ``every_frame``: see :meth:`SecondaryClassifier.classify`.
        """
        for classifier in self.classifiers:
            try:
                detections = await classifier.classify(frames, detections, every_frame)
            except InferError as e:
                classifier.failures += 1
                log.error("secondary model %s failed on a batch: %s", classifier.model.name, e)
        return detections

    async def stop(self) -> None:
        """Release every classifier's shared memory."""
        for classifier in self.classifiers:
            await classifier.stop()


async def open_secondary_classifiers(
    client: TritonClient, primary: ModelInfo, settings: Sequence[SecondaryModelSettings]
) -> SecondaryClassifiers | None:
    """Load the configured classifiers (None when there are none).

    Their shared memory is made on the first batch; :meth:`SecondaryClassifiers.stop` frees it.

    Raises:
        ModelNotFoundError: a classifier is not in the repository.
        UnsupportedModelError: a classifier or its settings do not fit.
    """
    if not settings:
        return None
    classifiers = []
    for item in settings:
        model = await client.load_model(item.name)
        classifiers.append(SecondaryClassifier(client, model, primary, item))
    return SecondaryClassifiers(classifiers)


def _attribute_column(dets: Detections) -> np.ndarray:
    """A fresh object column of attribute dicts (copying any that earlier stages set)."""
    column = np.empty(len(dets), object)
    existing = dets.data.get(ATTRIBUTES)
    for k in range(len(dets)):
        column[k] = dict(existing[k]) if existing is not None else {}
    return column


def _activate(scores: np.ndarray, activation: str) -> np.ndarray:
    if activation == "softmax":
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-scores))
    return scores
