"""The track record from daily sums (day_scores rows): per group and for all together, the Brier skill of the
champion's forecasts against climatology's with its 95 % interval, the coverage of the 10-90 % interval beside the
share the intervals claimed, a
reliability table with the count behind each point, a sharpness histogram, and the running skill by day.

Each forecast hour is counted once. Neighbouring hours' windows overlap (up to the horizon), so their outcomes
are alike: the interval resamples whole blocks of days, never single hours."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.models.evaluation.scoring import MIN_SCORED, small_sample
from src.models.evaluation.selection import daily_skill_intervals

MIN_PER_BIN = 20  # a reliability point from fewer forecasts says nothing
BASE_RATE_SHARE = 0.95  # direction "serves the base rate" when climatology made at least this share of it
MAX_RELIABILITY_BINS = 10
SHARPNESS_BINS = 10  # bars of 0.1


@dataclass
class EventRecord:
    """One event's record (P(up), or P(within 24 h)) for one group or for all together."""
    n: int
    skill: float | None
    skill_low: float | None
    skill_high: float | None
    base_rate: float | None  # the observed share of the event
    coverage: float | None  # within_24h: the share of outcomes inside the interval (time_metrics.interval_coverage)
    climatology_share: float | None  # the share of these forecasts that climatology made (the base rate)
    reliability: list[tuple[float, float, int]]  # (mean forecast, observed share, forecasts) per bin
    sharpness: list[int]  # forecasts per 0.1 bin of the forecast
    too_few: bool = False  # a skill from too small a sample (scoring.small_sample): shown as n/a (n N), no colour
    claimed: float | None = None  # within_24h: the share those intervals claimed (0.8 closed, 0.9 open)


def _skill(loss: float, reference: float) -> float | None:
    return None if not reference > 0 else float(1 - loss / reference)


def reliability_bins(by_bin: pd.DataFrame) -> list[tuple[float, float, int]]:
    """Adjacent forecast bins merged so that each point has at least MIN_PER_BIN forecasts (and about an equal
    share, at most MAX_RELIABILITY_BINS points): the forecast-quantile bins of the daily chart, from sums."""
    order = np.argsort(by_bin["bin"].to_numpy(), kind="stable")
    counts, forecasts, outcomes = (by_bin[c].to_numpy(dtype=float)[order] for c in ("n", "forecast_sum",
                                                                                    "outcome_sum"))
    total = int(counts.sum())
    if total < MIN_PER_BIN:
        return []
    size = max(MIN_PER_BIN, total / MAX_RELIABILITY_BINS)
    points, n, forecast, outcome = [], 0, 0.0, 0.0
    for count, forecast_sum, outcome_sum in zip(counts, forecasts, outcomes):
        n, forecast, outcome = n + int(count), forecast + forecast_sum, outcome + outcome_sum
        if n >= size:
            points.append((forecast / n, outcome / n, n))
            n, forecast, outcome = 0, 0.0, 0.0
    if n >= MIN_PER_BIN or (n and not points):
        points.append((forecast / n, outcome / n, n))
    elif n:  # too few for a point of its own: the remainder joins the last point
        f, o, m = points.pop()
        points.append(((f * m + forecast) / (m + n), (o * m + outcome) / (m + n), m + n))
    return points


def sharpness(by_bin: pd.DataFrame, fine_bins: int = 20) -> list[int]:
    """Forecasts per 0.1 of the forecast: how far from the base rate the forecasts dare to go."""
    bars = (by_bin["bin"].to_numpy(dtype=int) * SHARPNESS_BINS // fine_bins)
    return np.bincount(bars, weights=by_bin["n"].to_numpy(dtype=float), minlength=SHARPNESS_BINS)[
        :SHARPNESS_BINS].astype(int).tolist()


def running_skill(by_day: pd.DataFrame) -> pd.Series:
    """Per day (the index), the skill of every forecast up to the end of that day (from the MIN_PER_BIN-th on: the
    first handful swing it wildly)."""
    day, days = pd.factorize(by_day["day"], sort=True)
    n, loss, reference = (np.cumsum(np.bincount(day, weights=by_day[c].to_numpy(dtype=float), minlength=len(days)))
                          for c in ("n", "loss", "reference_loss"))
    shown = (n >= MIN_PER_BIN) & (reference > 0)
    return pd.Series(1 - loss[shown] / reference[shown], index=pd.DatetimeIndex(days[shown]), dtype=float)


def event_record(by_day: pd.DataFrame, by_bin: pd.DataFrame | None, interval: tuple[float, float],
                 horizon: int = 168) -> EventRecord:
    """The record of one event from its sums by day and by forecast bin (one group's, or every group's; without
    bins, no reliability or sharpness), with the 95 % interval of its skill; a skill from too small a sample
    (fewer than MIN_SCORED forecasts, or an interval on fewer than two blocks of days) is left out."""
    n = int(by_day["n"].sum())
    if not n:
        return EventRecord(0, None, None, None, None, None, None, [], [0] * SHARPNESS_BINS, too_few=True)
    days = pd.DatetimeIndex(by_day.loc[by_day["n"] > 0, "day"])
    if small_sample(n, days, horizon):
        interval = (float("nan"), float("nan"))
    covered = by_day["covered"].dropna()
    covered_n = float(by_day["covered_n"].sum()) if "covered_n" in by_day else 0.0
    enough = covered_n >= MIN_SCORED
    low, high = interval
    too_few = small_sample(n, days, horizon)
    return EventRecord(
        n=n, skill=None if too_few else _skill(by_day["loss"].sum(), by_day["reference_loss"].sum()),
        skill_low=None if np.isnan(low) else float(low), skill_high=None if np.isnan(high) else float(high),
        base_rate=float(by_day["outcome_sum"].sum() / n),
        coverage=float(covered.sum() / covered_n) if enough else None,
        climatology_share=float(by_day["climatology_n"].sum() / n),
        reliability=[] if by_bin is None else reliability_bins(by_bin),
        sharpness=[0] * SHARPNESS_BINS if by_bin is None else sharpness(by_bin), too_few=too_few,
        claimed=float(by_day["claimed"].sum() / covered_n) if enough and "claimed" in by_day else None)


def skill_intervals(by_day: pd.DataFrame, block_days: int) -> dict[tuple, tuple[float, float]]:
    """(symbol, target, event) -> the 95 % interval of the skill, ('all', None, event) for every group together:
    one bootstrap for them all, on the days of the record (a day without forecasts of a group adds nothing)."""
    out: dict = {}
    for event, rows in by_day.groupby("event"):
        groups = pd.MultiIndex.from_arrays([rows["symbol"], rows["target_pct"]])
        series, keys = pd.factorize(groups, sort=True)
        day, _ = pd.factorize(rows["day"], sort=True)
        loss, ref = (np.zeros((len(keys) + 1, day.max() + 1)) for _ in range(2))
        for matrix, column in ((loss, "loss"), (ref, "reference_loss")):
            np.add.at(matrix, (series, day), rows[column].to_numpy(dtype=float))
            matrix[-1] = matrix[:-1].sum(axis=0)  # every group together
        names = [(s, float(t), event) for s, t in keys] + [("all", None, event)]
        if loss.shape[1] < 2:
            out |= {k: (float("nan"), float("nan")) for k in names}
            continue
        bounds = daily_skill_intervals(loss, ref, block_days)
        out |= {k: (low, high) if r.sum() > 0 else (float("nan"), float("nan"))
                for k, (low, high), r in zip(names, bounds, ref)}
    return out


def track_record(by_day: pd.DataFrame, by_bin: pd.DataFrame | None, horizon: int
                 ) -> dict[tuple[str, float | None], dict[str, EventRecord]]:
    """(symbol, target) -> {'up': ..., 'within_24h': ...} per group, and ('all', None) for all together, from
    ScoreRecords.record_sums."""
    intervals = skill_intervals(by_day, block_days=max(1, -(-horizon // 24)))
    nothing = (float("nan"), float("nan"))
    parts = [(("all", None), by_day, by_bin)]
    for (symbol, target), days in by_day.groupby(["symbol", "target_pct"], sort=True):
        bins = None if by_bin is None else _of(by_bin, symbol, target)
        parts.insert(-1, ((symbol, float(target)), days, bins))
    out: dict = {}
    for (symbol, target), days, bins in parts:
        events = dict(list(days.groupby("event")))
        out[(symbol, target)] = {event: event_record(events.get(event, days.iloc[:0]),
                                                     None if bins is None else bins[bins["event"] == event],
                                                     intervals.get((symbol, target, event), nothing), horizon)
                                 for event in ("up", "within_24h")}
    return out


def _of(frame: pd.DataFrame, symbol: str, target: float) -> pd.DataFrame:
    return frame[(frame["symbol"] == symbol) & (frame["target_pct"] == target)]
