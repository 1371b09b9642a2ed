"""The on-screen display: boxes, labels, masks, zones and a timestamp drawn with OpenCV.

Runs in a viewer's worker thread (``asyncio.to_thread``), never in the pipeline's. The frame
is first brought to the host and scaled to the height asked for, then drawn on at that size
(drawing after scaling costs less on large sources and keeps text a readable size).

Colours (RGB) are fixed and documented in docs/live-view.md: class ``c`` is drawn in
``CLASS_COLOURS[c % 20]``; zones have one colour per kind (:data:`ZONE_COLOURS`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import cv2
import numpy as np

from vigil.frame import Frame, PixelFormat
from vigil.masks import MASKS
from vigil.osd.tap import LiveFrame

if TYPE_CHECKING:
    from vigil.analytics import AnalyticsConfig, AnalyticsCounts

RGB = tuple[int, int, int]

#: Box, label and mask colour of class ``c``: ``CLASS_COLOURS[c % 20]`` (RGB; Ultralytics'
#: palette: saturated colours that differ from their neighbours).
CLASS_COLOURS: Final[tuple[RGB, ...]] = (
    (255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49),
    (72, 249, 10), (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187),
    (44, 153, 168), (0, 194, 255), (52, 69, 147), (100, 115, 255), (0, 24, 236),
    (132, 56, 255), (82, 0, 133), (203, 56, 255), (255, 149, 200), (255, 55, 199),
)  # fmt: skip

#: Outline colour of each kind of analytics rule (RGB); a crowding zone whose alert is
#: raised turns ``crowded`` and is filled translucent.
ZONE_COLOURS: Final[dict[str, RGB]] = {
    "roi": (0, 200, 255),
    "roi_exclude": (160, 160, 160),
    "crowding": (255, 215, 0),
    "crowded": (255, 0, 0),
    "dwell": (200, 80, 255),
    "line": (255, 255, 255),
    "line_in": (0, 255, 0),
    "direction": (255, 140, 0),
}

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MASK_ALPHA = 0.45
_CROWDED_ALPHA = 0.25


def class_colour(class_id: int) -> RGB:
    """The documented colour (RGB) of a class."""
    return CLASS_COLOURS[class_id % len(CLASS_COLOURS)]


@dataclass(frozen=True, slots=True)
class Overlay:
    """What to draw (each part on by default; Frigate's ``bbox``, ``timestamp``, ``zones``).

    Attributes:
        bbox: Object boxes.
        labels: Each box's class, track id and confidence.
        masks: Instance masks, translucent.
        zones: Analytics rules: ROIs, lines with their in/out counts, crowding (with its
            state) and dwell zones, direction arrows.
        timestamp: The frame's capture time (UTC) and the stream id, top left.
    """

    bbox: bool = True
    labels: bool = True
    masks: bool = True
    zones: bool = True
    timestamp: bool = True


def output_size(width: int, height: int, requested: int | None, default: int) -> tuple[int, int]:
    """``(width, height)`` of the picture: the requested height (or the source's, at most
    ``default``), width by the source's aspect ratio; both even (what encoders prefer)."""
    h = requested if requested is not None else min(height, default)
    w = max(2, round(width * h / height / 2) * 2)
    return w, max(2, h - h % 2)


def to_host_bgr(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """The frame's pixels on the host, as BGR (OpenCV's order), scaled to ``size``.

    A GPU frame is copied to the host here, in the viewer's thread; NV12 is converted on
    the CPU.
    """
    image: Any = frame.image
    if frame.on_gpu:
        image = image.cpu().numpy()
    if frame.pixel_format is PixelFormat.NV12:
        image = cv2.cvtColor(image, cv2.COLOR_YUV2BGR_NV12)
        return _resize(image, size)
    return cv2.cvtColor(_resize(image, size), cv2.COLOR_RGB2BGR)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrink = size[1] < image.shape[0]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def render(
    live: LiveFrame,
    overlay: Overlay,
    size: tuple[int, int],
    analytics: AnalyticsConfig | None = None,
) -> np.ndarray:
    """Draw ``live`` at ``size`` with the parts ``overlay`` asks for; returns BGR pixels.

    Args:
        live: The frame and what was found in it.
        overlay: What to draw.
        size: ``(width, height)`` of the picture.
        analytics: The stream's analytics rules (zones are drawn from these).
    """
    frame = live.frame
    image = to_host_bgr(frame, size)
    sx, sy = size[0] / frame.width, size[1] / frame.height
    style = _Style.for_height(size[1])
    if overlay.zones and analytics is not None:
        _draw_zones(image, analytics, live.counts, frame.width, frame.height, (sx, sy), style)
    detections = live.detections
    if len(detections):
        boxes = detections.xyxy * np.array([sx, sy, sx, sy], np.float32)
        if overlay.masks and MASKS in detections.data:
            _draw_masks(image, detections.data[MASKS], detections.class_id, (sx, sy))
        if overlay.bbox:
            for box, class_id in zip(boxes, detections.class_id, strict=True):
                x1, y1, x2, y2 = (round(float(v)) for v in box)
                colour = _bgr(class_colour(int(class_id)))
                cv2.rectangle(image, (x1, y1), (x2, y2), colour, style.line, cv2.LINE_AA)
        if overlay.labels:
            for box, score, class_id, track in detections:
                x1, y1 = round(float(box[0]) * sx), round(float(box[1]) * sy)
                text = live.label(class_id)
                if track is not None:
                    text += f" #{track}"
                text += f" {score:.2f}"
                _label(image, text, (x1, y1), class_colour(class_id), style, above=True)
    if overlay.timestamp:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(frame.capture_time_s))
        millis = int(frame.capture_time_s * 1000) % 1000
        _label(image, f"{frame.stream_id}  {stamp}.{millis:03d} UTC", (0, 0), (0, 0, 0), style)
    return image


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of BGR pixels at ``quality`` (1–100)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV fails only on empty or odd arrays
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


@dataclass(frozen=True, slots=True)
class _Style:
    line: int
    font_scale: float
    font_thickness: int
    pad: int

    @classmethod
    def for_height(cls, height: int) -> _Style:
        # Sized for a 720p picture and scaled with it; never thinner than 2 px, so a box
        # survives JPEG's chroma subsampling.
        k = height / 720
        return cls(
            line=max(2, round(3 * k)),
            font_scale=max(0.35, 0.6 * k),
            font_thickness=max(1, round(1.5 * k)),
            pad=max(2, round(4 * k)),
        )


def _bgr(rgb: RGB) -> tuple[int, int, int]:
    return rgb[2], rgb[1], rgb[0]


def _text_colour(background: RGB) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (BGR)."""
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def _label(
    image: np.ndarray,
    text: str,
    at: tuple[int, int],
    background: RGB,
    style: _Style,
    above: bool = False,
) -> None:
    """``text`` on a filled box whose top left is ``at`` (or whose bottom left, ``above``);
    kept inside the picture."""
    (tw, th), base = cv2.getTextSize(text, _FONT, style.font_scale, style.font_thickness)
    bw, bh = tw + 2 * style.pad, th + base + 2 * style.pad
    x, y = at
    if above:
        y -= bh
    height, width = image.shape[:2]
    x = min(max(x, 0), max(width - bw, 0))
    y = min(max(y, 0), max(height - bh, 0))
    cv2.rectangle(image, (x, y), (x + bw, y + bh), _bgr(background), cv2.FILLED)
    cv2.putText(
        image,
        text,
        (x + style.pad, y + style.pad + th),
        _FONT,
        style.font_scale,
        _text_colour(background),
        style.font_thickness,
        cv2.LINE_AA,
    )


def _draw_masks(
    image: np.ndarray, masks: np.ndarray, class_ids: np.ndarray, scale: tuple[float, float]
) -> None:
    height, width = image.shape[:2]
    sx, sy = scale
    for mask, class_id in zip(masks, class_ids, strict=True):
        if mask is None:
            continue
        mh, mw = mask.mask.shape
        x0, y0 = round(mask.left * sx), round(mask.top * sy)
        w, h = max(1, round(mw * sx)), max(1, round(mh * sy))
        pixels = cv2.resize(mask.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        inside = pixels[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].astype(bool)
        region = image[cy0:cy1, cx0:cx1]
        colour = np.array(_bgr(class_colour(int(class_id))), np.float32)
        blended = region[inside] * (1 - _MASK_ALPHA) + colour * _MASK_ALPHA
        region[inside] = blended.astype(np.uint8)


def _rule_scale(
    config: AnalyticsConfig, width: int, height: int, to_picture: tuple[float, float]
) -> tuple[float, float]:
    """Factors from the rules' coordinates to the picture's pixels (as the analytics engine
    reads them: normalized, drawn for ``reference_size``, or source pixels)."""
    sx, sy = config.pixel_scale(width, height)
    return sx * to_picture[0], sy * to_picture[1]


def _draw_zones(
    image: np.ndarray,
    config: AnalyticsConfig,
    counts: AnalyticsCounts | None,
    width: int,
    height: int,
    to_picture: tuple[float, float],
    style: _Style,
) -> None:
    sx, sy = _rule_scale(config, width, height, to_picture)

    def pts(points: Any) -> np.ndarray:
        return np.round(np.array(points, np.float64) * (sx, sy)).astype(np.int32)

    for roi in config.rois:
        colour = ZONE_COLOURS["roi" if roi.mode == "include" else "roi_exclude"]
        _polygon(image, pts(roi.polygon), roi.name, colour, style)
    for zone in config.crowding:
        state = (counts.crowding.get(zone.name) if counts else None) or {}
        raised = bool(state.get("raised", 0))
        polygon = pts(zone.polygon)
        colour = ZONE_COLOURS["crowded" if raised else "crowding"]
        if raised:
            fill = image.copy()
            cv2.fillPoly(fill, [polygon], _bgr(colour))
            cv2.addWeighted(fill, _CROWDED_ALPHA, image, 1 - _CROWDED_ALPHA, 0, dst=image)
        text = f"{zone.name}: {state.get('count', 0)}/{zone.threshold}"
        _polygon(image, polygon, text + (" CROWDED" if raised else ""), colour, style)
    for zone in config.dwell:
        state = (counts.dwell.get(zone.name) if counts else None) or {}
        text = f"{zone.name}: {state.get('inside', 0)} in, {state.get('exceeded', 0)} over"
        _polygon(image, pts(zone.polygon), text, ZONE_COLOURS["dwell"], style)
    for line in config.lines:
        ends = pts(line.line)
        cv2.line(image, tuple(ends[0]), tuple(ends[1]), _bgr(ZONE_COLOURS["line"]), style.line)
        _in_arrow(image, ends, pts(line.direction) if line.direction else None, style)
        by_way = (counts.lines.get(line.name) if counts else None) or {}
        n_in = sum(by_way.get("in", {}).values())
        n_out = sum(by_way.get("out", {}).values())
        mid = (ends[0] + ends[1]) // 2
        text = f"{line.name} in {n_in} out {n_out}"
        _label(image, text, (int(mid[0]), int(mid[1])), ZONE_COLOURS["line"], style)
    for rule in config.directions:
        ends = pts(rule.direction)
        colour = _bgr(ZONE_COLOURS["direction"])
        cv2.arrowedLine(image, tuple(ends[0]), tuple(ends[1]), colour, style.line, tipLength=0.2)
        tip = (int(ends[1][0]), int(ends[1][1]))
        _label(image, rule.name, tip, ZONE_COLOURS["direction"], style)


def _polygon(image: np.ndarray, polygon: np.ndarray, text: str, colour: RGB, style: _Style) -> None:
    cv2.polylines(image, [polygon], True, _bgr(colour), style.line, cv2.LINE_AA)
    top = polygon[np.argmin(polygon[:, 1])]
    _label(image, text, (int(top[0]), int(top[1])), colour, style, above=True)


def _in_arrow(
    image: np.ndarray, ends: np.ndarray, direction: np.ndarray | None, style: _Style
) -> None:
    """A short arrow from the line's middle towards the side a crossing counts as ``in``
    (the ``direction`` rule's way, else the right-hand side of first → second point)."""
    p1, p2 = ends.astype(np.float64)
    along = p2 - p1
    normal = np.array([-along[1], along[0]])  # right-hand side with y pointing down
    if direction is not None:
        way = direction[1].astype(np.float64) - direction[0]
        if float(normal @ way) < 0:
            normal = -normal
    length = float(np.hypot(*normal))
    if length == 0:
        return
    mid = (p1 + p2) / 2
    tip = mid + normal / length * max(12.0, 0.15 * float(np.hypot(*along)))
    cv2.arrowedLine(
        image,
        (int(mid[0]), int(mid[1])),
        (int(tip[0]), int(tip[1])),
        _bgr(ZONE_COLOURS["line_in"]),
        style.line,
        tipLength=0.3,
    )
