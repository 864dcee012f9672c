"""Charts as inline SVG, drawn on the server: no chart library, no script, nothing fetched.

One series per chart, over evenly spaced buckets (a minute each on the overview). The SVG
scales to its container (viewBox); colours come from the stylesheet's classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 12, 26
MAX_X_LABELS = 7


def nice_ceiling(value: float) -> float:
    """The axis' top: 1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def chart(
    title: str,
    values: Sequence[float],
    *,
    start: datetime,
    step: timedelta,
    kind: str = "bars",
    css_class: str = "series",
) -> Markup:
    """An SVG chart of `values`, the first bucket starting at `start`, each `step` long."""
    n = max(len(values), 1)
    top = nice_ceiling(max(values, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x_of = [LEFT + plot_w * i / n for i in range(n + 1)]

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = y_of(top * fraction)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_label(top * fraction)}</text>"
        )
    if kind == "line":
        points = " ".join(
            f"{(x_of[i] + x_of[i + 1]) / 2:.1f},{y_of(v):.1f}" for i, v in enumerate(values)
        )
        if values:
            base_y = y_of(0)
            first_x, last_x = (x_of[0] + x_of[1]) / 2, (x_of[n - 1] + x_of[n]) / 2
            parts.append(
                f'<polygon class="{css_class} area" '
                f'points="{first_x:.1f},{base_y:.1f} {points} {last_x:.1f},{base_y:.1f}"/>'
            )
            parts.append(f'<polyline class="{css_class} line" points="{points}"/>')
    else:
        gap = 0.15 if plot_w / n > 4 else 0.0
        for i, value in enumerate(values):
            if value <= 0:
                continue
            width = (x_of[i + 1] - x_of[i]) * (1 - gap)
            y = y_of(value)
            parts.append(
                f'<rect class="{css_class}" x="{x_of[i]:.1f}" y="{y:.1f}" '
                f'width="{max(width, 0.5):.1f}" height="{TOP + plot_h - y:.1f}">'
                f"<title>{(start + step * i).strftime('%H:%M')}: {_label(value)}</title></rect>"
            )
    every = max(1, math.ceil(n / MAX_X_LABELS))
    for i in range(0, n, every):
        at = start + step * i
        parts.append(
            f'<text class="axis" x="{x_of[i]:.1f}" y="{HEIGHT - 8}" text-anchor="start">'
            f"{at.strftime('%H:%M')}</text>"
        )
    parts.append(
        f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
        f'y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
