"""The calibration plot of a model card as inline SVG, drawn from the evaluation's calibration table.

Plain text, no plotting library: the card stays one self-contained file (Markdown or HTML) that any
browser renders, and a card is built without matplotlib's import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

SIZE, MARGIN = 360, 48  # the plot square and the room for the axes' labels, in pixels
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _x(value: float) -> float:
    return MARGIN + value * SIZE


def _y(value: float) -> float:
    return MARGIN + (1 - value) * SIZE


def _axes() -> list[str]:
    parts = [
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{SIZE}" height="{SIZE}" fill="white" stroke="#999"/>',
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#999" stroke-dasharray="4 4"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        label = f'font-size="11">{tick:g}</text>'
        parts.append(f'<text x="{_x(tick)}" y="{_y(0) + 16}" text-anchor="middle" {label}')
        parts.append(f'<text x="{MARGIN - 6}" y="{_y(tick) + 4}" text-anchor="end" {label}')
    parts.append(
        f'<text x="{_x(0.5)}" y="{_y(0) + 36}" font-size="12" text-anchor="middle">'
        "predicted probability of a late arrival</text>"
    )
    parts.append(
        f'<text x="14" y="{_y(0.5)}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {_y(0.5)})">observed late rate</text>'
    )
    return parts


def _curve(points: Sequence[tuple[float, float]], colour: str) -> list[str]:
    line = " ".join(f"{_x(p):.1f},{_y(o):.1f}" for p, o in points)
    dots = [f'<circle cx="{_x(p):.1f}" cy="{_y(o):.1f}" r="3" fill="{colour}"/>' for p, o in points]
    return [f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>', *dots]


def calibration_svg(curves: Mapping[str, Sequence[tuple[float, float]]], title: str) -> str:
    """One curve per model: (mean predicted probability, observed late rate) per probability bin; the
    dashed diagonal is perfect calibration."""
    width = SIZE + 2 * MARGIN + 170  # the legend sits right of the plot
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{SIZE + 2 * MARGIN}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{_x(0.5)}" y="{MARGIN - 16}" font-size="13" text-anchor="middle">{escape(title)}</text>',
        *_axes(),
    ]
    for index, (name, points) in enumerate(curves.items()):
        colour = COLOURS[index % len(COLOURS)]
        parts += _curve(points, colour)
        y = MARGIN + 14 + 18 * index
        parts.append(f'<rect x="{_x(1) + 14}" y="{y - 9}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{_x(1) + 32}" y="{y + 1}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
