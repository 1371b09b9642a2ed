"""Output parsers: raw tensors → :class:`~vigil.detections.Detections`, one per format."""

from __future__ import annotations

from collections.abc import Callable

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


def make_parser(
    model: ModelInfo,
    confidence_threshold: float,
    find_plugin: Callable[[str], type[Parser]] | None = None,
) -> Parser:
    """The parser the model's ``vigil.parser`` parameter names.

    Args:
        model: The model.
        confidence_threshold: The default confidence (the model's ``vigil.confidence``
            overrides it).
        find_plugin: Looks up a name that is not built in (installed plugins, module:Class);
            raises ``ValueError`` naming the plugin when it cannot.

    Raises:
        UnsupportedModelError: no parser named, an unknown one, or outputs / parameters
            that do not fit it (the message names the parameter).
    """
    cls = PARSERS.get(model.parser)
    where = f"model {model.name!r} names parser {model.parser!r} (config parameter 'vigil.parser')"
    if cls is None and find_plugin is not None and model.parser:
        try:
            cls = find_plugin(model.parser)
        except ValueError as e:
            raise UnsupportedModelError(f"{where}: {e}") from e
    if cls is None:
        raise UnsupportedModelError(f"{where}; known parsers: {', '.join(sorted(PARSERS))}")
    return cls(model, confidence_threshold)
