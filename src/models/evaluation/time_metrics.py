"""How good a resolution-time forecast is: Brier skill of P(within 6 h / 24 h / H) against the climatology
time model, coverage of the 10-90 % interval, and pinball-loss skill of the three quantiles.

Forecasts are arrays of FORECAST_COLUMNS per hour; outcomes are the hours until resolution (the hit
candle's number k, or inf when the window expired). A touch at hour k happened in (k - 1, k], uniformly
for all we know: coverage counts the share of that hour inside the interval, and the pinball loss uses
its midpoint.

Coverage is judged as the interval is shown, against the share it claims (issue #33). An interval whose 90 %
point lies past the window (q90 at the cap H, shown "168+") reads "90 %: after q10 h": it claims P(T >= q10) =
0.9, and an expired window lies inside it. A closed one, "80 %: q10-q90 h", claims 0.8, and an expired window
lies outside it. Each row's claim is kept beside its coverage (`claimed_coverage`), so a group whose intervals
are open half the time is held to 0.85, not to 0.8. (Until issue #33 an expired window inside an open interval
was credited with the forecast's own (0.9 - P(within H)) / (1 - P(within H)): a forecast scoring its own
outcome.) For the pinball loss an expired window counts as H.
"""
from __future__ import annotations

import numpy as np

QUANTILE_LEVELS = (0.1, 0.5, 0.9)
REACHES_H = 0.005  # an hour this close to H is at the cap (stored with 2 decimals; the same in scores.py's SQL)
CLOSED_CLAIM, OPEN_CLAIM = 0.8, 0.9  # what a closed interval [q10, q90] and an open one [q10, past H) claim to hold


def within(hours: np.ndarray, horizon: int) -> np.ndarray:
    """(n, 3) outcomes of the three probability forecasts: resolved within 6 h, 24 h, H."""
    return np.column_stack([hours <= k for k in (6, 24, horizon)]).astype(float)


def time_loss(forecast: np.ndarray, hours: np.ndarray, horizon: int = 168) -> np.ndarray:
    """Per hour: the mean Brier loss of the three probability forecasts (the champion rule's loss)."""
    return ((forecast[:, :3] - within(hours, horizon)) ** 2).mean(axis=1)


def interval_coverage(forecast: np.ndarray, hours: np.ndarray, horizon: int = 168) -> np.ndarray:
    """Per hour: the share of the outcome inside the interval [q10, q90], or [q10, past H) when q90 lies at the cap
    (an expired window: inside an open interval, outside a closed one; the same in SQL: src.database.records.scores;
    stored hours have 2 decimals)."""
    low, high = forecast[:, 3], forecast[:, 5]
    expired = ~np.isfinite(hours)
    k = np.where(expired, 0.0, hours)
    inside = np.clip(np.minimum(high, k) - np.maximum(low, k - 1), 0.0, 1.0)
    return np.where(expired, at_cap(high, horizon), inside).astype(float)


def claimed_coverage(q90: np.ndarray, horizon: int) -> np.ndarray:
    """Per hour: the share of outcomes its interval claims to hold: 0.9 when it is open (q90 at the cap: "after
    q10 h"), 0.8 when it is closed ("q10-q90 h")."""
    return np.where(at_cap(np.asarray(q90, float), horizon), OPEN_CLAIM, CLOSED_CLAIM)


def at_cap(hours, horizon: int):
    """Whether a quantile (hours) lies at the cap H, i.e. past the window: shown as "168+"."""
    return hours >= horizon - REACHES_H


def hours_text(value: float, horizon: int | None = None) -> str:
    """Hours as people read them, in messages and on the pages alike: whole hours, or tenths below 10 h (a 1 %
    move can come within the hour); a quantile at the cap H lies past the window, so it reads "168+"."""
    if horizon is not None and at_cap(value, horizon):
        return f"{horizon}+"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def interval_text(q10: float, q90: float, horizon: int) -> str:
    """The interval as it is judged: "80 %: 3–40 h" when closed; "90 %: after 3 h" when its 90 % point lies past the
    window (it claims only that the move comes after q10, if at all within the window)."""
    if at_cap(q90, horizon):
        return f"90 %: after {hours_text(q10, horizon)} h"
    return f"80 %: {hours_text(q10, horizon)}–{hours_text(q90, horizon)} h"


def pinball(forecast: np.ndarray, hours: np.ndarray, horizon: int = 168) -> np.ndarray:
    """Per hour: the summed pinball loss of the three quantiles (outcome capped at H)."""
    outcome = np.where(np.isfinite(hours), hours - 0.5, float(horizon))
    total = np.zeros(len(hours))
    for j, level in enumerate(QUANTILE_LEVELS):
        error = outcome - forecast[:, 3 + j]
        total += np.maximum(level * error, (level - 1) * error)
    return total


def _skill(loss: np.ndarray, reference: np.ndarray) -> float | None:
    return float(1 - loss.sum() / reference.sum()) if len(reference) and reference.sum() > 0 else None


def time_metrics(forecast: np.ndarray, climatology: np.ndarray, hours: np.ndarray, horizon: int = 168,
                 known: np.ndarray | None = None) -> dict[str, float | int | None]:
    """Every figure stored for a time model (skills against the climatology time model's forecasts). `known`:
    (n, 3) booleans, whether each row's fate at 6 h, 24 h and H was known when the figure is computed (a live record
    read while windows are open: src.models.evaluation.scoring.known_fates); P(within t) is scored on the rows known
    at t, P(within H), the interval's coverage and the pinball loss on those known at H (complete windows). `n` is
    the count scored at 24 h, `n_complete` at H. None: every row is known."""
    known = np.ones((len(hours), 3), bool) if known is None else np.asarray(known, bool)
    n = int(known[:, 1].sum())
    complete = known[:, 2]
    if n == 0 and not complete.any():
        return {"n": 0, "n_complete": 0}
    outcomes = within(np.where(np.isnan(hours), np.inf, hours), horizon)  # open: no touch yet
    loss, reference = (forecast[:, :3] - outcomes) ** 2, (climatology[:, :3] - outcomes) ** 2
    done = hours[complete]
    return {"n": n, "n_complete": int(complete.sum()),
            "brier_skill_6h": _skill(loss[known[:, 0], 0], reference[known[:, 0], 0]),
            "brier_skill_24h": _skill(loss[known[:, 1], 1], reference[known[:, 1], 1]),
            "brier_skill_horizon": _skill(loss[complete, 2], reference[complete, 2]),
            "brier": float(loss[known[:, 1], 1].mean()) if n else None,
            "interval_coverage": (float(interval_coverage(forecast[complete], done, horizon).mean())
                                  if complete.any() else None),
            "interval_claimed": (float(claimed_coverage(forecast[complete, 5], horizon).mean())
                                 if complete.any() else None),
            "pinball_skill": _skill(pinball(forecast[complete], done, horizon),
                                    pinball(climatology[complete], done, horizon)),
            "hit_rate": float(np.isfinite(done).mean()) if complete.any() else None,
            "avg_time_to_target_hours": float(done[np.isfinite(done)].mean()) if np.isfinite(done).any() else None}
