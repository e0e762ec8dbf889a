"""A bar chart as inline SVG, rendered on the server.

Why hand-written rather than a charting library: the dashboard loads no script
(its CSP says `script-src 'none'`) and downloads nothing at run time, and one bar
chart of a dozen values is a few rectangles and labels. Colours come from classes
in the dashboard's stylesheet (`style-src 'self'` forbids inline `style`), and the
SVG carries a `<title>` and `<desc>` for screen readers; the page shows the same
numbers as a table.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.dashboard.html import e

WIDTH = 720
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 8, 16, 40


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def bar_chart(*, chart_id: str, title: str, desc: str, bars: Sequence[tuple[str, int]], selected: str = "") -> str:
    """An SVG bar chart of `(label, value)` pairs (values >= 0); the `selected` label's bar is marked."""
    top = _nice_ceiling(max((v for _, v in bars), default=0))
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(bars))
    parts = [
        f'<svg id="{e(chart_id)}" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" aria-labelledby="{e(chart_id)}-title {e(chart_id)}-desc">'
        f'<title id="{e(chart_id)}-title">{e(title)}</title><desc id="{e(chart_id)}-desc">{e(desc)}</desc>',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - _RIGHT}" y2="{_TOP + plot_h}"/>',
    ]
    for tick in (0, top // 2, top) if top > 1 else (0, top):
        y = _TOP + plot_h - plot_h * tick / top
        parts.append(f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}"/>')
    for i, (label, value) in enumerate(bars):
        h = plot_h * value / top
        x = _LEFT + i * slot + slot * 0.15
        y = _TOP + plot_h - h
        cls = "bar selected" if label == selected else "bar"
        parts.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}">'
            f"<title>{e(label)}: {value}</title></rect>"
            f'<text class="value" x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" text-anchor="middle">{value}</text>'
            f'<text class="label" x="{x + slot * 0.35:.1f}" y="{HEIGHT - _BOTTOM + 16}" '
            f'text-anchor="middle">{e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
