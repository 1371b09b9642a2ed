"""Per-stream analytics over tracked objects: ROI filtering, line crossing, crowding, dwell,
direction (DeepStream nvdsanalytics' rules, plus dwell)."""

from vigil.analytics.config import (
    AnalyticsConfig,
    CrowdingZone,
    DirectionRule,
    DwellZone,
    LineCrossing,
    RoiFilter,
)
from vigil.analytics.engine import (
    AnalyticsCounts,
    AnalyticsEvent,
    AnalyticsResult,
    ObjectAnalytics,
    StreamAnalytics,
)

__all__ = [
    "AnalyticsConfig",
    "AnalyticsCounts",
    "AnalyticsEvent",
    "AnalyticsResult",
    "CrowdingZone",
    "DirectionRule",
    "DwellZone",
    "LineCrossing",
    "ObjectAnalytics",
    "RoiFilter",
    "StreamAnalytics",
]
