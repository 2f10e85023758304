"""One scoring of forecasts against outcomes, for every place the product reports skill: the backtest tables,
the daily live performance and, through the same per-array scores, training's validation rows.

Rows are stored forecasts joined with their outcomes (ForecastRecords.resolved and resolved_time), one per model
and hour, `is_champion` marking the forecast users got. Each asset x target is scored per model and, as the
series CHAMPION, over the forecasts users got, whichever model made them. The reference is climatology's
forecast for the same hour: an hour without one is left out, never filled from outcomes (a reference known
only afterwards is no forecast anyone could have made).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.database.records.forecasts import FORECAST_COLUMNS
from src.models.evaluation.direction_metrics import forecast_metrics
from src.models.evaluation.selection import skill_interval
from src.models.evaluation.time_metrics import time_metrics

CHAMPION = "champion"  # the scored series of the forecasts users got
REFERENCE = "climatology"
GROUP = ["symbol", "timeframe", "target_pct"]


def direction_score(p: np.ndarray, reference: np.ndarray, y: np.ndarray, horizon: int) -> dict:
    """Every figure of a direction forecast P(up first) against outcomes y (1 up, 0 down)."""
    return forecast_metrics(y, p, reference)


def timing_score(forecast: np.ndarray, reference: np.ndarray, hours: np.ndarray, horizon: int,
                 known: np.ndarray | None = None) -> dict:
    """Every figure of how-soon forecasts (rows of FORECAST_COLUMNS) against the hours to resolution (`known`: which
    fates were known, see known_fates)."""
    return time_metrics(forecast, reference, hours, horizon, known)


def known_fates(rows: pd.DataFrame, as_of: pd.Timestamp | None, horizon: int) -> np.ndarray:
    """(n, 3): whether each stored how-soon forecast's fate at 6 h, 24 h and H was known at `as_of`: its t hours of
    candles had all closed (then a window not resolved within t is a 0), and at H the window had also been resolved
    (a complete window). A forecast younger than t is left out at t even when it has already resolved: counting
    the early resolutions alone would lean the figure towards yes. None: every resolved row is known."""
    resolved = rows["status"].notna().to_numpy()
    if as_of is None:
        return np.column_stack([resolved] * 3)
    closed = ((pd.Timestamp(as_of) - rows["timestamp"]) / pd.Timedelta(hours=1)).to_numpy(dtype=float) - 1
    return np.column_stack([closed >= 6, closed >= 24, (closed >= horizon) & resolved])


@dataclass(frozen=True)
class RowKind:
    """How one kind of stored forecast row is scored."""
    columns: list[str]  # the forecast's columns
    scored: Callable[[pd.DataFrame], pd.Series]  # which rows may have an outcome to score
    outcome: Callable[[pd.DataFrame], np.ndarray]
    score: Callable[[np.ndarray, np.ndarray, np.ndarray, int], dict]
    event: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple]  # (y, p, reference) of the skill with a CI
    event_share: str  # the name of the event's share among the scored windows
    known: Callable[[pd.DataFrame, pd.Timestamp | None, int], np.ndarray] | None = None  # fates known (how soon)


def _hours(rows: pd.DataFrame) -> np.ndarray:
    """Hours until resolution; an expired window as infinity (censored at the horizon)."""
    return rows["hours_to_resolution"].where(rows["status"] != "expired", np.inf).to_numpy(dtype=float)


DIRECTION_ROWS = RowKind(
    columns=["probability"], scored=lambda rows: rows["status"].isin(["up", "down"]),
    outcome=lambda rows: rows["actual_outcome"].to_numpy(dtype=float), score=direction_score,
    event=lambda y, p, reference: (y, p[:, 0], reference[:, 0]), event_share="up_share")
TIMING_ROWS = RowKind(  # the interval is on P(resolved within 24 h); open windows count where their fate is known
    columns=list(FORECAST_COLUMNS), scored=lambda rows: pd.Series(True, index=rows.index), outcome=_hours,
    score=timing_score, event=lambda hours, p, reference: ((hours <= 24).astype(float), p[:, 1], reference[:, 1]),
    event_share="within_24h", known=known_fates)


def score_rows(kind: RowKind, rows: pd.DataFrame, horizon: int, as_of: pd.Timestamp | None = None,
               interval: bool = False, series: str | None = None) -> pd.DataFrame:
    """Per asset x timeframe x target x series (each model, then CHAMPION): n scored against the reference,
    the kind's figures, the counts of resolved and pending forecasts, the hit rate (share not expired) over
    complete windows (whose last candle closed by `as_of`; every resolved window when None), the mean hours
    to resolution, and with `interval` the share of the event and the 95 % interval of its skill (Brier skill
    of P(up) or of P(within 24 h)). How-soon figures score only the fates known at `as_of` (known_fates). A skill
    from too few forecasts reads None (small_sample). `series`: that one only (e.g. CHAMPION)."""
    out = []
    for (symbol, timeframe, target), group in rows.groupby(GROUP, sort=True):
        arrays = _GroupArrays(kind, group.reset_index(drop=True), horizon, as_of)
        for name, members in arrays.series():
            if series is not None and name != series:
                continue
            row = {"symbol": symbol, "timeframe": timeframe, "target_pct": float(target), "model_name": name,
                   **arrays.counts(members)}
            at, climatology = arrays.aligned(members)
            common = pd.DatetimeIndex(arrays.times[at]).tz_localize("UTC")
            forecast, outcome = arrays.forecast[at], arrays.outcome[at]
            known = None if arrays.known is None else arrays.known[at]
            figures = (kind.score(forecast, climatology, outcome, horizon, known) if known is not None else
                       kind.score(forecast if len(kind.columns) > 1 else forecast[:, 0],
                                  climatology if len(kind.columns) > 1 else climatology[:, 0], outcome, horizon))
            row |= {"n": figures.pop("n", 0), **figures, "hit_rate": row["hit_rate"]}
            event_rows = slice(None) if known is None else known[:, 1]  # the interval's event: P(within 24 h)
            times = common[event_rows]
            if interval:
                event = [part[event_rows] for part in kind.event(outcome, forecast, climatology)]
                row[kind.event_share] = float(event[0].mean()) if len(times) else None
                row["skill_low"], row["skill_high"] = (
                    skill_interval(*event, times, block_days=max(1, -(-horizon // 24))) if len(times)
                    else (None, None))
            if small_sample(row["n"], times, horizon if interval else None):
                row |= {column: None for column in SKILLS if column in row}
            if row.get("n_complete", MIN_SCORED) < MIN_SCORED:  # the figures of complete windows alone
                row |= {column: None for column in COMPLETE_WINDOW_FIGURES if column in row}
            out.append(row)
    return pd.DataFrame(out)


MIN_SCORED = 20  # a skill from fewer forecasts says nothing: shown as n/a (n N), everywhere
COMPLETE_WINDOW_FIGURES = ("brier_skill_horizon", "pinball_skill", "interval_coverage", "interval_claimed")
MIN_BLOCKS = 2  # an interval needs at least this many blocks of the horizon's days to resample
SKILLS = ("brier_skill", "brier_skill_6h", "brier_skill_24h", "brier_skill_horizon", "pinball_skill", "skill_low",
          "skill_high")


def small_sample(n: int, times: pd.DatetimeIndex | None = None, horizon: int | None = None) -> bool:
    """The one small-sample rule of the pages, the bot, the reports and the gauges: a skill from fewer than
    MIN_SCORED forecasts, or, where it is shown with an interval (`horizon` given), one whose interval rests on
    fewer than MIN_BLOCKS blocks of the horizon's days (neighbouring windows share outcomes), is not shown."""
    if n < MIN_SCORED:
        return True
    if horizon is None or times is None or not len(times):
        return False
    return interval_blocks(times.min(), times.max(), horizon) < MIN_BLOCKS


def interval_blocks(first: pd.Timestamp, last: pd.Timestamp, horizon: int) -> int:
    """How many blocks of the horizon's days the interval's bootstrap resamples over the days first..last."""
    days = (pd.Timestamp(last).floor("D") - pd.Timestamp(first).floor("D")).days + 1
    return -(-days // max(1, -(-horizon // 24)))


def _instants(times: pd.Series) -> np.ndarray:
    """Times as plain datetime64 (UTC): a tz-aware column's to_numpy() is an array of objects, slow to compare."""
    return times.to_numpy(dtype="datetime64[ns]")


class _GroupArrays:
    """One asset x target's rows as plain arrays, each per-row figure computed once and sliced per series (this
    runs for every model, group and window of every daily job)."""

    def __init__(self, kind: RowKind, group: pd.DataFrame, horizon: int, as_of: pd.Timestamp | None):
        self.group = group
        self.times = _instants(group["timestamp"])
        self.scored = kind.scored(group).to_numpy(dtype=bool)
        self.forecast = group[kind.columns].to_numpy(dtype=float)
        self.outcome = kind.outcome(group)
        self.known = None if kind.known is None else kind.known(group, as_of, horizon)
        status = group["status"]
        self.resolved = status.notna().to_numpy()
        self.hit = self.resolved & status.ne("expired").to_numpy()
        self.complete = self.resolved.copy()  # windows whose last candle had closed by as_of
        if as_of is not None:
            self.complete &= (group["timestamp"] <= as_of - pd.Timedelta(hours=horizon + 1)).to_numpy()
        column = "time_to_target_hours" if "time_to_target_hours" in group else "hours_to_resolution"
        self.hours = group[column].to_numpy(dtype=float) if column in group else np.full(len(group), np.nan)
        reference = np.flatnonzero(self.scored & (group["model_name"] == REFERENCE).to_numpy())
        order = np.argsort(self.times[reference], kind="stable")
        self.reference_times = self.times[reference][order]
        self.reference = self.forecast[reference][order]

    def series(self):
        """(name, row mask): each model's rows, then the rows users got as CHAMPION."""
        names = self.group["model_name"].to_numpy()
        for name in sorted(set(names)):
            yield name, names == name
        champion = self.group["is_champion"].to_numpy(dtype=bool)
        if champion.any():
            yield CHAMPION, champion

    def aligned(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The series' scored rows (positions, by time) whose hour has a climatology forecast, and those forecasts
        (an hour without one is left out)."""
        rows = np.flatnonzero(members & self.scored)
        rows = rows[np.argsort(self.times[rows], kind="stable")]
        at = np.searchsorted(self.reference_times, self.times[rows])
        found = at < len(self.reference_times)
        found[found] = self.reference_times[at[found]] == self.times[rows][found]
        return rows[found], self.reference[at[found]]

    def counts(self, members: np.ndarray) -> dict:
        """Resolved and pending forecasts; the hit rate over complete windows (counting early resolutions of open
        windows alone would lean towards hits); the mean hours to a hit."""
        resolved, complete = self.resolved[members], self.complete[members]
        hours = self.hours[members & self.hit]
        hours = hours[~np.isnan(hours)]
        return {"resolved_predictions": int(resolved.sum()), "pending_predictions": int((~resolved).sum()),
                "hit_rate": float(self.hit[members][complete].mean()) if complete.any() else None,
                "avg_time_to_target_hours": float(hours.mean()) if len(hours) else None}
