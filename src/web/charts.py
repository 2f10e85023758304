"""Charts as inline SVG, drawn on the server: no script and no library to load, readable on a phone (they scale
with the page). Colours and fonts come from the stylesheet (classes), so the page's CSP needs no inline style."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd
from markupsafe import Markup

from src.models.evaluation.record import MIN_PER_BIN

WIDTH, HEIGHT = 500, 330
LEFT, RIGHT, TOP, BOTTOM = 84, 18, 40, 60
SERIES_CLASSES = ("s0", "s1", "s2", "s3", "s4")


class Frame:
    """A plot area mapping data (x, y) to SVG coordinates."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / ((self.x1 - self.x0) or 1) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (value - self.y0) / ((self.y1 - self.y0) or 1) * (HEIGHT - TOP - BOTTOM)


def _svg(title: str, body: list[str], description: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title><desc>{escape(description)}</desc>'
        f'<text class="chart-title" x="{WIDTH / 2}" y="24" text-anchor="middle">{escape(title)}</text>'
        + "".join(body) + "</svg>")


def _axes(frame: Frame, x_ticks: Sequence[tuple[float, str]], y_ticks: Sequence[tuple[float, str]],
          x_label: str, y_label: str) -> list[str]:
    out = []
    for value, label in y_ticks:
        y = frame.y(value)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for value, label in x_ticks:
        x = frame.x(value)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 19}" text-anchor="middle">'
                   f'{escape(label)}</text>')
    out.append(f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
               f'height="{HEIGHT - TOP - BOTTOM}"/>')
    out.append(f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 14}" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    middle = (TOP + HEIGHT - BOTTOM) / 2
    out.append(f'<text class="axis-label" x="18" y="{middle}" text-anchor="middle" '
               f'transform="rotate(-90 18 {middle})">{escape(y_label)}</text>')
    return out


def _note(text: str) -> str:
    return (f'<text class="note" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{(TOP + HEIGHT - BOTTOM) / 2}" '
            f'text-anchor="middle">{escape(text)}</text>')


def _unit_ticks() -> list[tuple[float, str]]:
    return [(v / 10, f"{v / 10:.1f}") for v in range(0, 11, 2)]


def reliability_chart(points: list[tuple[float, float, int]], title: str, x_label: str) -> Markup:
    """Observed share against forecast per bin, the diagonal as perfect calibration, each point's count beside
    it (its tooltip says the numbers)."""
    frame = Frame((0, 1), (0, 1))
    body = _axes(frame, _unit_ticks(), _unit_ticks(), x_label, "observed share")
    body.append(f'<line class="diagonal" x1="{frame.x(0)}" y1="{frame.y(0)}" x2="{frame.x(1)}" y2="{frame.y(1)}"/>')
    if not points:
        body.append(_note(f"too few forecasts yet (a point needs {MIN_PER_BIN})"))
    else:
        path = " ".join(f"{frame.x(p):.1f},{frame.y(o):.1f}" for p, o, _ in points)
        body.append(f'<polyline class="line s0" points="{path}"/>')
        labelled = -100.0
        for p, o, n in points:
            x, y = frame.x(p), frame.y(o)
            body.append(f'<circle class="dot s0" cx="{x:.1f}" cy="{y:.1f}" r="4.5">'
                        f'<title>forecast {p:.2f}, observed {o:.2f}, {n:,} forecasts</title></circle>')
            if x - labelled >= 44:  # a count per point while they do not overlap (the tooltip has every one)
                below = y < TOP + 24
                body.append(f'<text class="count" x="{x:.1f}" y="{y + 18 if below else y - 9:.1f}" '
                            f'text-anchor="middle">{_short_count(n)}</text>')
                labelled = x
    return _svg(title, body, "Reliability: dots on the dashed diagonal mean the forecast probabilities came true "
                             "as often as they said; the number beside each dot is how many forecasts it holds.")


def sharpness_chart(counts: list[int], title: str, x_label: str) -> Markup:
    """Forecasts per 0.1 of the forecast probability."""
    top = max(counts) if counts and max(counts) else 1
    frame = Frame((0, 1), (0, top * 1.1))
    step = _nice_step(top * 1.1)
    y_ticks = [(v, _short_count(int(v))) for v in _range(0, top * 1.1, step)]
    body = _axes(frame, _unit_ticks(), y_ticks, x_label, "forecasts")
    width = frame.x(0.1) - frame.x(0)
    for k, count in enumerate(counts):
        if count:
            x, y = frame.x(k / 10), frame.y(count)
            body.append(f'<rect class="bar" x="{x + 1:.1f}" y="{y:.1f}" width="{width - 2:.1f}" '
                        f'height="{frame.y(0) - y:.1f}"><title>{k / 10:.1f}-{(k + 1) / 10:.1f}: {count:,} '
                        f'forecasts</title></rect>')
    if not sum(counts):
        body.append(_note("no forecasts in this period"))
    return _svg(title, body, "Sharpness: how the forecasts spread over the probabilities; all in one bar means the "
                             "model rarely departs from the base rate.")


def running_chart(series: list[tuple[str, pd.Series]], title: str) -> Markup:
    """Each series' cumulative Brier skill by day (a Series indexed by day), with the zero line (no better than
    climatology)."""
    drawn = [(label, points) for label, points in series if len(points)]
    if not drawn:
        frame = Frame((0, 1), (-0.1, 0.1))
        body = _axes(frame, [], [(0, "0")], "day (UTC)", "Brier skill vs climatology")
        body.append(_note(f"not enough scored forecasts yet (the line starts at {MIN_PER_BIN})"))
        return _svg(title, body, "")
    first = min(points.index[0] for _, points in drawn)
    last = max(points.index[-1] for _, points in drawn)
    low = min(min(points.min() for _, points in drawn), 0.0)
    high = max(max(points.max() for _, points in drawn), 0.0)
    pad = max((high - low) * 0.08, 0.01)
    frame = Frame((first.value, (last if last > first else first + pd.Timedelta(days=1)).value),
                  (low - pad, high + pad))
    step = _nice_step(high - low + 2 * pad)
    digits = len(f"{step:.10g}".partition(".")[2])  # as many as the step has: 0.25 -> 2
    y_ticks = [(v, f"{v:+.{digits}f}" if v else "0") for v in _range(low - pad, high + pad, step)]
    x_ticks = [(d.value, _day_label(d, last - first)) for d in _date_ticks(first, last)]
    body = _axes(frame, x_ticks, y_ticks, "day (UTC)", "Brier skill vs climatology")
    body.append(f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{frame.y(0):.1f}" y2="{frame.y(0):.1f}"/>')
    legend = [f'<rect class="legend-box" x="{LEFT + 4}" y="{TOP + 4}" width="150" height="{19 * len(drawn) + 8}"/>']
    for k, (label, points) in enumerate(drawn):
        css = SERIES_CLASSES[k % len(SERIES_CLASSES)]
        xs = LEFT + (points.index.as_unit("ns").asi8 - frame.x0) / ((frame.x1 - frame.x0) or 1) * (WIDTH - LEFT - RIGHT)
        ys = [frame.y(v) for v in points.to_numpy()]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
        body.append(f'<polyline class="line {css}" points="{path}"><title>{escape(label)}: '
                    f'{points.iloc[-1]:+.3f} on {points.index[-1]:%Y-%m-%d}</title></polyline>')
        y = TOP + 18 + 19 * k
        legend.append(f'<line class="line {css}" x1="{LEFT + 10}" x2="{LEFT + 30}" y1="{y - 4}" y2="{y - 4}"/>'
                      f'<text class="legend" x="{LEFT + 36}" y="{y}">{escape(label)}</text>')
    body += legend  # over the lines
    return _svg(title, body, "Running skill: the Brier skill of every forecast up to that day; above 0 beats "
                             "climatology (the base rate), below 0 is worse.")


def _short_count(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n:,}"


def _nice_step(span: float) -> float:
    raw = span / 5 if span > 0 else 1
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _range(low: float, high: float, step: float) -> list[float]:
    first = -(-low // step) * step
    count = int((high - first) // step) + 1
    return [round(first + k * step, 10) for k in range(max(count, 0))]


def _date_ticks(first: pd.Timestamp, last: pd.Timestamp, most: int = 5) -> list[pd.Timestamp]:
    span = (last - first).days
    if span <= most:
        return list(pd.date_range(first, last, freq="D"))
    for freq in ("7D", "MS", "QS", "YS"):
        ticks = pd.date_range(first, last, freq=freq)
        if len(ticks) <= most:
            return list(ticks)
    return list(pd.date_range(first, last, periods=most).normalize())


def _day_label(day: pd.Timestamp, span: pd.Timedelta) -> str:
    return f"{day:%d %b}" if span.days < 120 else f"{day:%b %Y}"
