"""A batch on its way through the engine: sent to the model, then in the stage thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from vigil.detections import Detections
from vigil.events.schema import Event
from vigil.frame import Frame
from vigil.infer.shm import Slot
from vigil.pipeline.route import Route
from vigil.pipeline.taps import ResultTaps
from vigil.stages.base import FrameResult, StageChain

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
    ``parsed_only``, its detections (the secondary classifiers and the stages come after)."""

    batch: SentBatch
    job: asyncio.Future[Any]
    parsed_only: bool


def parse_outputs(route: Route, slot: Slot, frames: list[Frame]) -> list[Detections]:
    """The detections of each of ``frames`` from the outputs in ``slot``."""
    outputs = slot.host_outputs(len(frames))
    return route.parser.parse(outputs, [(f.width, f.height) for f in frames])


# --- in the stage thread --------------------------------------------------------------------


def parse_and_release(loop: asyncio.AbstractEventLoop, batch: SentBatch) -> list[Detections]:
    """The batch's detections (one per inferred frame); its slot goes back to the ring (on
    ``loop``) as soon as the outputs are read."""
    if batch.slot is None:
        return []
    try:
        return parse_outputs(batch.route, batch.slot, batch.inferred)
    finally:
        loop.call_soon_threadsafe(batch.route.ring.release, batch.slot)


def run_stages(
    chain: StageChain, taps: ResultTaps, route: Route, results: list[FrameResult]
) -> list[Event]:
    """The stage chain (tracking, analytics, plugins) on a batch's results, then its events;
    the taps (live view, recording triggers) see both."""
    chain.process(results)
    events = [e for r in results for e in route.events.build_result(r)]
    taps.observe(results, events)
    return events


def finish_batch(
    chain: StageChain, taps: ResultTaps, loop: asyncio.AbstractEventLoop, batch: SentBatch
) -> tuple[list[FrameResult], list[Event]]:
    """Everything a batch needs before its delivery, in one visit to the stage thread."""
    results = frame_results(batch, parse_and_release(loop, batch))
    return results, run_stages(chain, taps, batch.route, results)


def frame_results(batch: SentBatch, detections: list[Detections]) -> list[FrameResult]:
    """One result per frame of the batch: the inferred frames get their detections, the
    pass-through frames none (the tracker predicts them)."""
    found = iter(detections)
    model = batch.route.model
    return [
        FrameResult(f, next(found) if f.infer else _EMPTY, inferred=f.infer, model=model)
        for f in batch.frames
    ]
