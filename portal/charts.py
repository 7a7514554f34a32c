"""A bar chart of units per day as plain numbers for an inline SVG template (no JavaScript, no build step)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    day: dt.date
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    maximum: int
    ticks: list[tuple[float, str]]  # (y, label) of horizontal gridlines
    labels: list[tuple[float, str]]  # (x, label) under some bars
    plot_left: int
    plot_bottom: int
    total: int


def _nice_ceiling(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return value


def daily_chart(days: list[dt.date], values: dict[dt.date, int], *, width: int = 720, height: int = 220) -> Chart:
    left, right, top, bottom = 44, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    maximum = _nice_ceiling(max([0, *values.values()]))
    slot = plot_w / max(1, len(days))
    bars = []
    for i, day in enumerate(days):
        value = max(0, values.get(day, 0))
        bar_h = plot_h * value / maximum
        bars.append(
            Bar(
                day=day,
                value=value,
                x=left + i * slot + slot * 0.15,
                y=top + plot_h - bar_h,
                width=slot * 0.7,
                height=bar_h,
            )
        )
    ticks = [(top + plot_h - plot_h * f, f"{int(maximum * f):,}") for f in (0, 0.5, 1)]
    every = max(1, len(days) // 8)
    labels = [(left + i * slot + slot / 2, day.strftime("%b %d")) for i, day in enumerate(days) if i % every == 0]
    return Chart(width, height, bars, maximum, ticks, labels, left, top + plot_h, sum(values.values()))
