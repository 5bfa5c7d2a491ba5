"""Stable, distinct colours per class id."""

from __future__ import annotations

# Ultralytics' 20-colour palette, as BGR.
_HEX = (
    *("FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB"),
    *("2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7"),
)
_PALETTE = tuple((int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _HEX)


def color_for(class_id: int) -> tuple[int, int, int]:
    """The BGR colour of ``class_id``."""
    return _PALETTE[class_id % len(_PALETTE)]


def text_color_on(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (BGR)."""
    b, g, r = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)
