"""A stage that alerts when a person is in a zone without a helmet nearby."""

from __future__ import annotations

from vigil.ext import Alert, FrameResult, FrameStage


class ZoneAlertStage(FrameStage):
    """Raises an alert once per tracked object of class ``target`` whose box centre is in
    ``zone`` while no object of class ``unless_near`` overlaps the top third of its box
    (a helmet on its head).

    Args:
        zone: ``[x0, y0, x1, y1]`` as fractions of the frame (the whole frame by default).
        target: Class name of the objects watched.
        unless_near: Class name that, on the head of the object, means all is well.
        alert: The alert's name (``object.analytics.rule`` of the event).
        fail_every: Test hook: raise on every Nth frame (0: never).
    """

    def __init__(
        self,
        zone: list[float] | None = None,
        target: str = "person",
        unless_near: str = "helmet",
        alert: str = "no_helmet",
        fail_every: int = 0,
    ) -> None:
        self.zone = zone or [0.0, 0.0, 1.0, 1.0]
        if len(self.zone) != 4 or not all(0 <= v <= 1 for v in self.zone):
            raise ValueError(f"zone must be [x0, y0, x1, y1] in [0, 1], not {zone}")
        self.target, self.unless_near, self.alert = target, unless_near, alert
        self.fail_every = fail_every
        self.alerted: dict[str, set[int]] = {}  # stream → track ids already alerted
        self.frames = 0

    def process_frame(self, result: FrameResult) -> None:
        self.frames += 1
        if self.fail_every and self.frames % self.fail_every == 0:
            raise RuntimeError(f"failing on purpose on frame {self.frames}")
        dets, model = result.detections, result.model
        if model is None or dets.tracker_id is None:
            return
        names = [model.label(int(c)) for c in dets.class_id]
        pairs = zip(dets.xyxy, names, strict=True)
        helmets = [box for box, name in pairs if name == self.unless_near]
        width, height = result.frame.width, result.frame.height
        x0, y0, x1, y1 = self.zone
        seen = self.alerted.setdefault(result.stream_id, set())
        for box, name, track in zip(dets.xyxy, names, dets.tracker_id, strict=True):
            cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
            if name != self.target or int(track) in seen or not (x0 <= cx <= x1 and y0 <= cy <= y1):
                continue
            head_bottom = box[1] + (box[3] - box[1]) / 3
            if any(h[0] < box[2] and h[2] > box[0] and h[1] < head_bottom and h[3] > box[1]
                   for h in helmets):  # fmt: skip
                continue
            seen.add(int(track))
            result.alerts.append(Alert(self.alert, int(track), attributes={"zone": str(self.zone)}))

    def stream_removed(self, stream_id: str) -> None:
        self.alerted.pop(stream_id, None)
