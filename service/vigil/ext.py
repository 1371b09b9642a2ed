"""Vigil's public extension API: everything a parser, stage or sink plugin needs.

Import only from here (``from vigil.ext import FrameStage, Alert``); every other module of
Vigil is internal and may change in any release. What this module exports keeps working
within a major :data:`API_VERSION`: names are not removed or renamed, signatures only gain
optional arguments, and :class:`FrameResult` and :class:`Detections` only gain fields. A
plugin can check ``vigil.ext.API_VERSION`` at import time. See docs/plugins.md.

Three kinds of plugin, each a subclass of one base:

* :class:`Parser`: raw output tensors of a batch → one :class:`Detections` per frame; a
  model selects it by its config parameter ``vigil.parser`` (entry-point group
  ``vigil.parsers``);
* :class:`FrameStage`: reads and extends each frame's :class:`FrameResult` after tracking
  and analytics, and raises :class:`Alert` items that become ``alert`` events (group
  ``vigil.stages``; settings ``stages`` or a stream's ``stages``);
* :class:`EventSink`: receives each inference batch's :class:`Event` list (group
  ``vigil.sinks``; settings ``sinks``).
"""

from __future__ import annotations

from vigil.detections import ATTRIBUTES, Detections
from vigil.events.schema import Event, EventType, to_json_line
from vigil.events.sinks import EventSink
from vigil.frame import Frame
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.tensors import InputFormat, TensorSpec
from vigil.parsers.base import Cluster, Parser, clip_boxes, cxcywh_to_xyxy, model_param
from vigil.specs import StreamSpec
from vigil.stages.base import Alert, FrameResult, FrameStage

#: The extension API's version: the major number changes only with a breaking change.
API_VERSION = "1.0"

__all__ = [
    "API_VERSION",
    "ATTRIBUTES",
    "Alert",
    "Cluster",
    "Detections",
    "Event",
    "EventSink",
    "EventType",
    "Frame",
    "FrameResult",
    "FrameStage",
    "InputFormat",
    "ModelInfo",
    "Parser",
    "StreamSpec",
    "TensorSpec",
    "UnsupportedModelError",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "model_param",
    "to_json_line",
]
