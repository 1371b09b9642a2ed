"""Output parsers: raw tensors → :class:`~vigil.detections.Detections`, one per format."""

from __future__ import annotations

from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.parsers.base import Parser
from vigil.parsers.detectnet_v2 import DetectNetV2Parser
from vigil.parsers.ssd import SsdParser
from vigil.parsers.yolo import YoloParser
from vigil.parsers.yolo_seg import YoloSegParser

PARSERS: dict[str, type[Parser]] = {
    cls.name: cls for cls in (SsdParser, YoloParser, YoloSegParser, DetectNetV2Parser)
}


def make_parser(model: ModelInfo, confidence_threshold: float) -> Parser:
    """The parser the model's ``vigil.parser`` parameter names.

    Raises:
        UnsupportedModelError: no parser named, an unknown one, or outputs / parameters
            that do not fit it (the message names the parameter).
    """
    cls = PARSERS.get(model.parser)
    if cls is None:
        raise UnsupportedModelError(
            f"model {model.name!r} names parser {model.parser!r} (config parameter "
            f"'vigil.parser'); known parsers: {', '.join(sorted(PARSERS))}"
        )
    return cls(model, confidence_threshold)
