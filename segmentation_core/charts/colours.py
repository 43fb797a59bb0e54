"""Colours of the charts: a segment's colour from a `{segment id: colour}` map, with fallbacks.

Segment colours come from `segmentation_core.palette` (the report) or from ModelInfo (the dashboard);
these are only the colours that are no segment's, and the fallback for an id a map lacks.
"""
from __future__ import annotations

from typing import Mapping

from plotly.colors import qualitative

#: The whole-base reference ("All customers") and rows without a segment (scoring errors).
BASE_COLOUR = "#343a40"
NO_SEGMENT_COLOUR = "#6c757d"


def fallback_colour(segment_id: int) -> str:
    """A segment's colour when none was given (a server older than `Segment.colour`): plotly's default
    colour sequence, by id."""
    return qualitative.Plotly[int(segment_id) % len(qualitative.Plotly)]


def segment_colour(colours: Mapping[int, str] | None, segment_id: int) -> str:
    """The colour of `segment_id` in `colours`; an id it lacks gets the fallback colour, and -1 (a row
    without a segment) grey."""
    segment_id = int(segment_id)
    if segment_id < 0:
        return NO_SEGMENT_COLOUR
    return (colours or {}).get(segment_id) or fallback_colour(segment_id)
