"""One colour per segment id, shared by the training report and (through ModelInfo) the dashboard.

Colour-blind-safe Okabe-Ito colours first, then a second qualitative set, then golden-angle hues, so a
segment's colour depends on its id only (ids are ordered by size at training), never on k.
"""
from __future__ import annotations

_PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F3C8D", "#B8A200",
    "#3969AC", "#F2B701", "#11A579", "#E73F74", "#80BA5A", "#E68310", "#008695", "#A5AA99",
)


def segment_colour(segment_id: int) -> str:
    """The colour of one segment id (>= 0), as a CSS colour."""
    if segment_id < 0:
        raise ValueError(f"segment_id={segment_id} should be >= 0")
    if segment_id < len(_PALETTE):
        return _PALETTE[segment_id]
    return f"hsl({(segment_id * 137.508) % 360:.0f}, 65%, 45%)"


def segment_colours(k: int) -> list[str]:
    """Colours of segment ids 0..k-1."""
    if k < 0:
        raise ValueError(f"k={k} should be >= 0")
    return [segment_colour(i) for i in range(k)]
