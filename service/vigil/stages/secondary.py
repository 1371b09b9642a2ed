"""Secondary classifiers on tracked objects: each track is classified once.

Untracked streams classify in the emitter (every due frame, see
:mod:`vigil.classifiers`). With a tracker, a track's attributes are known once it has
been classified, so only tracks without attributes are cropped and sent; every later frame of
the track carries the remembered attributes, and they follow the track through occlusions
and predicted frames. A failed request leaves those tracks unclassified, to be tried on the
next frame.
"""

from __future__ import annotations

import asyncio

import numpy as np

from vigil.classifiers import SecondaryClassifiers
from vigil.detections import ATTRIBUTES, Detections
from vigil.stages.base import FrameResult, Stage
from vigil.track import PREDICTED, TrackChangeKind


class ClassifyTracksStage(Stage):
    """Runs the secondary classifiers once per track.

    Args:
        secondary: The classifiers.
        loop: The event loop their (async) Triton requests run on; this stage waits for
            them from the chain's thread.
    """

    name = "secondary"

    def __init__(self, secondary: SecondaryClassifiers, loop: asyncio.AbstractEventLoop) -> None:
        self.secondary = secondary
        self.loop = loop
        self._known: dict[str, dict[int, dict[str, str]]] = {}

    def process(self, results: list[FrameResult]) -> None:
        todo: list[tuple[FrameResult, np.ndarray]] = []
        for result in results:
            dets = result.detections
            known = self._known.setdefault(result.stream_id, {})
            for change in result.track_changes:
                if change.kind is TrackChangeKind.EXIT:
                    known.pop(change.track_id, None)
            if dets.tracker_id is None or not len(dets):
                continue
            predicted = dets.data.get(PREDICTED)
            new = np.array(
                [
                    int(t) not in known and (predicted is None or not predicted[i])
                    for i, t in enumerate(dets.tracker_id)
                ],
                bool,
            )
            if result.inferred and new.any():
                todo.append((result, np.flatnonzero(new)))
        if todo:
            self._classify(todo)
        for result in results:
            self._apply(result)

    def _classify(self, todo: list[tuple[FrameResult, np.ndarray]]) -> None:
        frames = [r.frame for r, _ in todo]
        subsets = [r.detections[rows] for r, rows in todo]
        failures = sum(c.failures for c in self.secondary.classifiers)
        future = asyncio.run_coroutine_threadsafe(
            self.secondary.run(frames, subsets, every_frame=True), self.loop
        )
        classified = future.result()
        if sum(c.failures for c in self.secondary.classifiers) != failures:
            return  # retried on the next frame of these tracks
        for (result, _), dets in zip(todo, classified, strict=True):
            known = self._known.setdefault(result.stream_id, {})
            attrs = dets.data.get(ATTRIBUTES)
            assert dets.tracker_id is not None
            for k, track_id in enumerate(dets.tracker_id):
                known[int(track_id)] = {} if attrs is None else dict(attrs[k])

    def _apply(self, result: FrameResult) -> None:
        dets = result.detections
        known = self._known.get(result.stream_id)
        if dets.tracker_id is None or not len(dets) or not known:
            return
        column = np.empty(len(dets), object)
        existing = dets.data.get(ATTRIBUTES)
        for i, track_id in enumerate(dets.tracker_id):
            base = {} if existing is None else dict(existing[i])
            column[i] = {**base, **known.get(int(track_id), {})}
        result.detections = Detections(
            dets.xyxy,
            dets.confidence,
            dets.class_id,
            dets.tracker_id,
            {**dets.data, ATTRIBUTES: column},
        )

    def stream_removed(self, stream_id: str) -> None:
        self._known.pop(stream_id, None)
