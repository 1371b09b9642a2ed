"""A batch on its way through the engine: sent to the model, then in the stage thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from vigil.detections import Detections
from vigil.frame import Frame
from vigil.infer.shm import Slot
from vigil.pipeline.route import Route
from vigil.stages.base import FrameResult

_EMPTY = Detections.empty()


@dataclass
class SentBatch:
    """A batch on its way: frames (inferred and pass-through), its request, when sent."""

    frames: list[Frame]
    inferred: list[Frame]  # the frames of ``frames`` the model sees, in order
    route: Route
    slot: Slot | None = None  # None when no frame of the batch is inferred
    task: asyncio.Task[None] | None = None
    sent: float = 0.0


@dataclass
class StagedBatch:
    """A batch handed to the stage thread: ``job`` gives its (results, events), or, when
    ``classify``, its detections (the secondary classifiers and the stages come after)."""

    batch: SentBatch
    job: asyncio.Future[Any]
    classify: bool


def parse_outputs(route: Route, slot: Slot, frames: list[Frame]) -> list[Detections]:
    """The detections of each of ``frames`` from the outputs in ``slot``."""
    outputs = slot.host_outputs(len(frames))
    return route.parser.parse(outputs, [(f.width, f.height) for f in frames])


def frame_results(batch: SentBatch, detections: list[Detections]) -> list[FrameResult]:
    """One result per frame of the batch: the inferred frames get their detections, the
    pass-through frames none (the tracker predicts them)."""
    found = iter(detections)
    model = batch.route.model
    return [
        FrameResult(f, next(found) if f.infer else _EMPTY, inferred=f.infer, model=model)
        for f in batch.frames
    ]
