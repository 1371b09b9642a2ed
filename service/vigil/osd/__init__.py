"""On-screen display and the live view: the frame tap, the renderer and what the live
endpoints send (docs/live-view.md)."""

from vigil.osd.render import CLASS_COLOURS, ZONE_COLOURS, Overlay, class_colour, render
from vigil.osd.tap import FrameTap, LiveFrame, LiveMetrics, StreamGoneError, ViewerLimitError
from vigil.osd.view import BOUNDARY, MAX_TILES, LiveView, View, grid

__all__ = [
    "BOUNDARY",
    "CLASS_COLOURS",
    "MAX_TILES",
    "ZONE_COLOURS",
    "FrameTap",
    "LiveFrame",
    "LiveMetrics",
    "LiveView",
    "Overlay",
    "StreamGoneError",
    "View",
    "ViewerLimitError",
    "class_colour",
    "grid",
    "render",
]
