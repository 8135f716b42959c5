"""Charts drawn as inline SVG on the server: no JavaScript, no CDN, readable without styles."""
from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape

STATUS_COLOURS = {"init": "#9aa5b1", "ready": "#3b82f6", "claimed": "#f59e0b",
                  "success": "#16a34a", "failed": "#dc2626", "timeout": "#7c3aed",
                  "deleted": "#475569"}
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 40, 30, 10


def _svg(width: int, height: int, title: str, body: list[str], css_class: str = "chart") -> Markup:
    return Markup(f'<svg class="{css_class}" role="img" viewBox="0 0 {width} {height}" '
                  f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def _axis_ticks(top_value: float, x0: int, x1: int, y_of, fmt=str) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        value = top_value * fraction
        y = y_of(value)
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{fmt(value)}</text>')
    return parts


def stacked_bars(hours: list[datetime], counts: dict[str, list[int]], title: str) -> Markup:
    """Tickets per hour, one bar per hour, stacked by status, with a legend."""
    totals = [sum(series[i] for series in counts.values()) for i in range(len(hours))]
    top = max(totals + [1])
    plot_h = HEIGHT - BOTTOM - TOP
    bar_w = (WIDTH - LEFT - 10) / max(len(hours), 1)

    def y_of(value):
        return TOP + plot_h - plot_h * value / top

    body = _axis_ticks(top, LEFT, WIDTH - 10, y_of, lambda v: f"{v:g}")
    for i, hour in enumerate(hours):
        x, base = LEFT + i * bar_w, 0
        for status, series in counts.items():
            if series[i]:
                y, height = y_of(base + series[i]), plot_h * series[i] / top
                body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                            f'height="{height:.1f}" fill="{STATUS_COLOURS.get(status, "#000")}">'
                            f'<title>{hour:%Y-%m-%d %H}:00 {escape(status)}: {series[i]}</title>'
                            f'</rect>')
                base += series[i]
        if hour.hour == 0:
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h + 4}" '
                        f'class="grid"/><text x="{x:.1f}" y="{TOP + plot_h + 16}" '
                        f'text-anchor="middle">{hour:%Y-%m-%d}</text>')
    legend_x = LEFT
    for status in counts:
        body.append(f'<rect x="{legend_x}" y="{HEIGHT + 2}" width="9" height="9" '
                    f'fill="{STATUS_COLOURS.get(status, "#000")}"/>')
        body.append(f'<text x="{legend_x + 12}" y="{HEIGHT + 10}">{escape(status)}</text>')
        legend_x += 80
    if not counts:
        body.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                    f'no ticket activity</text>')
    return _svg(WIDTH, HEIGHT + 14, title, body, css_class="chart wide")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _seconds(value: float, scale: float) -> str:
    return f"{value:.1f} s" if scale < 10 else f"{value:.0f} s"


def box_plots(runtimes: dict[str, list[float]], title: str) -> Markup:
    """One horizontal box plot per service (min, quartiles, median, max) on a shared axis."""
    row_h, label_w = 34, 160
    height = TOP + BOTTOM + row_h * max(len(runtimes), 1)
    top = max([max(v) for v in runtimes.values() if v] + [1.0])

    def x_of(value):
        return label_w + (WIDTH - label_w - 20) * value / top

    body = []
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        x = x_of(top * fraction)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}" '
                    f'class="grid"/><text x="{x:.1f}" y="{height - 12}" text-anchor="middle">'
                    f'{_seconds(top * fraction, top)}</text>')
    for row, (service, values) in enumerate(runtimes.items()):
        mid = TOP + row * row_h + row_h / 2
        low, q1, median, q3, high = (_quantile(values, q) for q in (0, 0.25, 0.5, 0.75, 1))
        body.append(f'<text x="{label_w - 6}" y="{mid + 4:.1f}" text-anchor="end">'
                    f'{escape(service)} (n={len(values)})</text>')
        body.append(f'<line x1="{x_of(low):.1f}" x2="{x_of(high):.1f}" y1="{mid:.1f}" '
                    f'y2="{mid:.1f}" class="whisker"/>')
        body.append(f'<rect x="{x_of(q1):.1f}" y="{mid - 9:.1f}" '
                    f'width="{max(x_of(q3) - x_of(q1), 1):.1f}" height="18" class="box">'
                    f'<title>{escape(service)}: median {median:.1f} s, quartiles {q1:.1f}-'
                    f'{q3:.1f} s, range {low:.1f}-{high:.1f} s</title></rect>')
        body.append(f'<line x1="{x_of(median):.1f}" x2="{x_of(median):.1f}" y1="{mid - 9:.1f}" '
                    f'y2="{mid + 9:.1f}" class="median"/>')
    if not runtimes:
        body.append(f'<text x="{WIDTH / 2}" y="{TOP + row_h / 2 + 4}" text-anchor="middle">'
                    f'no successful tickets</text>')
    return _svg(WIDTH, height, title, body)


def horizontal_bars(rows: list[tuple[str, int]], title: str) -> Markup:
    """A labelled bar per row (queue depth per service)."""
    row_h, label_w = 24, 200
    height = TOP + 10 + row_h * max(len(rows), 1)
    top = max([value for _, value in rows] + [1])
    body = []
    for i, (label, value) in enumerate(rows):
        y = TOP + i * row_h
        width = (WIDTH - label_w - 60) * value / top
        body.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}'
                    f'</text><rect x="{label_w}" y="{y + 3}" width="{max(width, 1):.1f}" '
                    f'height="16" class="bar"/><text x="{label_w + width + 6:.1f}" '
                    f'y="{y + 15}">{value}</text>')
    if not rows:
        body.append(f'<text x="{WIDTH / 2}" y="{TOP + 15}" text-anchor="middle">'
                    f'no current services</text>')
    return _svg(WIDTH, height, title, body)
