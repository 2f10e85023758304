"""Survival maths of the how-soon models, apart from the model classes: the Kaplan-Meier estimate of a
right-censored distribution, step and piecewise-linear distribution functions, and the first exit of a
driftless Brownian motion from an interval."""
from __future__ import annotations

import numpy as np

SERIES_TERMS = 60  # of the Brownian exit-time series: ample for t down to a few minutes


def observed_hours(hours: np.ndarray, expired: np.ndarray, horizon: int) -> np.ndarray:
    """A hit at hour k as k - 1/2; an expired window at H (censored)."""
    return np.where(expired, float(horizon), np.asarray(hours, dtype=float) - 0.5)


def kaplan_meier(values: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct event values and the estimated distribution function just after each (right censoring)."""
    order = np.lexsort((censored, values))  # at ties, events before censorings (the usual convention)
    values, censored = np.asarray(values, float)[order], np.asarray(censored, bool)[order]
    at_risk = len(values) - np.arange(len(values))
    factors = np.where(censored, 1.0, 1.0 - 1.0 / at_risk)
    survival = np.cumprod(factors)
    events = ~censored
    if not events.any():
        return np.array([np.inf]), np.array([0.0])
    # the survival after the last event of each distinct value
    event_values = values[events]
    last = np.r_[event_values[1:] != event_values[:-1], True]
    return event_values[last], 1.0 - survival[events][last]


class StepDistribution:
    """A distribution function given by Kaplan-Meier steps."""

    def __init__(self, points: np.ndarray, cdf: np.ndarray):
        self.points, self.values = points, cdf

    def cdf(self, x: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.points, x, side="right")
        return np.where(index > 0, self.values[np.maximum(index - 1, 0)], 0.0)

    def quantile(self, q: float) -> float:
        """Smallest point whose F reaches q; +inf when the mass stops short of q (censoring)."""
        index = np.searchsorted(self.values, q - 1e-12, side="left")
        return float(self.points[index]) if index < len(self.points) else np.inf


def interpolate_rows(points: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Each row's piecewise-linear F (values on the common points) at that row's own t."""
    t = np.clip(t, 0.0, points[-1])
    right = np.clip(np.searchsorted(points, t, side="left"), 1, len(points) - 1)
    share = (t - points[right - 1]) / (points[right] - points[right - 1])
    rows = np.arange(len(values))
    return values[rows, right - 1] + share * (values[rows, right] - values[rows, right - 1])


def exit_probability(t: np.ndarray, sigma: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """P(a driftless Brownian motion with variance sigma^2 per hour, started at 0, has left (lower, upper)
    by time t): the eigenfunction series of the heat equation on an interval of width L = upper - lower."""
    width, start = upper - lower, -lower
    n = np.arange(1, SERIES_TERMS + 1)
    weights = 2 / (n * np.pi) * (1 - (-1.0) ** n) * np.sin(n * np.pi * start / width)
    rate = (n * np.pi / width) ** 2 / 2
    exponent = -np.multiply.outer(np.multiply.outer(sigma ** 2, np.asarray(t, float)), rate)
    survival = np.clip((np.exp(exponent) * weights).sum(axis=-1), 0.0, 1.0)
    return 1.0 - survival


def curve_quantiles(points: np.ndarray, values: np.ndarray, levels: list[float], horizon: float) -> np.ndarray:
    """(n, len(levels)) hours where each row's piecewise-linear F (values on the common points, from F(0) = 0)
    reaches each level; H where it does not within the window."""
    out = np.empty((len(values), len(levels)))
    rows = np.arange(len(values))
    for j, q in enumerate(levels):
        above = values >= q
        index = np.where(above.any(axis=1), above.argmax(axis=1), len(points) - 1)
        low_f, high_f = values[rows, index - 1], values[rows, index]
        share = np.where(high_f > low_f, (q - low_f) / np.where(high_f > low_f, high_f - low_f, 1.0), 1.0)
        hours = points[index - 1] + np.clip(share, 0, 1) * (points[index] - points[index - 1])
        out[:, j] = np.where(above.any(axis=1), hours, horizon)
    return np.minimum(out, horizon)
