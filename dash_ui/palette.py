"""One colour per segment id, the same on every page.

Segment ids are stable within a model version (0 = largest segment at training), so colouring by id
keeps a segment's colour across pages, charts and tables. Every figure and badge asks `segment_color`.
"""
from __future__ import annotations

# Okabe-Ito-like qualitative palette (colour-blind safe first eight), then a second set for k > 8.
_PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#CC79A7",  # pink
    "#56B4E9",  # sky
    "#D55E00",  # vermillion
    "#7F3C8D",  # purple
    "#B8A200",  # olive yellow
    "#3969AC",
    "#F2B701",
    "#11A579",
    "#E73F74",
    "#80BA5A",
    "#E68310",
    "#008695",
    "#A5AA99",
)

#: Colour of rows without a segment (scoring errors) and of the whole-base reference.
NO_SEGMENT_COLOR = "#6c757d"
BASE_COLOR = "#343a40"


def segment_color(segment_id: int) -> str:
    """The colour of segment `segment_id`; ids beyond the palette wrap around, -1 (error) is grey."""
    if segment_id is None or int(segment_id) < 0:
        return NO_SEGMENT_COLOR
    return _PALETTE[int(segment_id) % len(_PALETTE)]


def segment_color_map(segment_ids) -> dict[int, str]:
    """`{segment_id: colour}` for the given ids."""
    return {int(i): segment_color(int(i)) for i in segment_ids}
