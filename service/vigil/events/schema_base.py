"""What every event model is built from: the frozen base model, checked numbers, and the
members several sub-objects share (geographic location, site coordinate).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor infinite."""
Pixel = Annotated[StrictInt, Field(ge=0)]
"""A non-negative integer pixel coordinate."""


class SchemaModel(BaseModel):
    """Base of every event model: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GeoLocation(SchemaModel):
    """Geographic location (``lat``, ``lon``, ``alt``); DeepStream writes zeros when unset.

    Attributes:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        alt: Altitude in metres.
    """

    lat: FiniteFloat = 0.0
    lon: FiniteFloat = 0.0
    alt: FiniteFloat = 0.0


class Coordinate(SchemaModel):
    """Cartesian coordinate (``x``, ``y``, ``z``) in a site frame; zeros when unset.

    Attributes:
        x: X coordinate.
        y: Y coordinate.
        z: Z coordinate.
    """

    x: FiniteFloat = 0.0
    y: FiniteFloat = 0.0
    z: FiniteFloat = 0.0
