"""How soon for any move size: one how-soon model per asset whose input includes the move's size in units of the
current volatility, fitted on a grid of sizes, so a trader's own stop (3.5 %, 7 %) gets a forecast too.

The model is `vol_logistic`'s (src.models.estimators.time_models.LogisticTime) with the move's size as more
inputs: log z, (log z)^2 and (log z)^3 of z = X / (vol_24 sqrt(24)) (a random walk needs a time proportional to
z^2; the exit probability at each t is an S-curve in log z, which a line alone fitted 0.92 where the truth was
0.76 on a synthetic walk). Its quantile levels are not recalibrated in the fit: recalibrated over all sizes at
once they bent the small sizes' quantiles (on 2021-07..2022-06 the pinball skill of BTC 1 % fell from +0.164
to -0.884; bench/results/any_size_choice.txt). Samples: the resolution times of
every size of SIZE_GRID from the same candles, each size taking every len(SIZE_GRID)-th hour at its own offset,
so every hour is used once and the fit stays as large as one target's. The configured targets keep their own
models (their champions, served per horizon); this one answers the other sizes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.data.features import with_barrier
from src.models.estimators.dataset import Dataset, build_dataset, build_time_dataset
from src.models.estimators.serving import (
    MIN_RECALIBRATION,
    ServingRule,
    compose,
    interval_shifts,
)
from src.models.estimators.time_models import LOGISTIC_TIME_FEATURES, LogisticTime, forecast_array
from src.models.evaluation.selection import Evidence
from src.utils.choices import BadInput

# 3 % and 7 % are left out on purpose: the report scores the model there, on sizes it never saw
SIZE_GRID = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.04, 0.05, 0.06, 0.08, 0.10)
MIN_MOVE, MAX_MOVE = 0.005, 0.10
MODEL_NAME = TASK = "any_size"
CORRECTION_DAYS, MIN_CORRECTION = 120, 200  # each size has 1/11 of the hours: a longer window, fewer samples
POOLED_TARGET = 0.0  # the registry's target of an asset's any-size model (it serves every size)
FEATURES = (*LOGISTIC_TIME_FEATURES, "move_z", "move_z2", "move_z3")


def parse_move(text: str) -> float:
    """`3.5`, `3.5%` or `0.035` -> 0.035, from 0.5 % to 10 %."""
    cleaned = str(text).strip().rstrip("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise BadInput(f"move {str(text).strip()[:40]}: a size in % from 0.5 to 10, e.g. 3.5") from None
    move = value / 100 if value >= MIN_MOVE * 100 - 1e-9 or "%" in str(text) else value
    if not np.isfinite(move) or not MIN_MOVE - 1e-9 <= move <= MAX_MOVE + 1e-9:
        raise BadInput(f"move {str(text).strip()[:40]}: a size in % from 0.5 to 10, e.g. 3.5")
    return round(move, 6)


def size_samples(candles: pd.DataFrame, features: pd.DataFrame, horizon: int,
                 unfillable: pd.DatetimeIndex | None = None, sizes: tuple[float, ...] = SIZE_GRID) -> Dataset:
    """The pooled samples: each size's resolution times on its share of the hours (see the module notes)."""
    parts = []
    for k, size in enumerate(sizes):
        data = build_time_dataset(build_dataset(candles, features, size, horizon, unfillable), features, size, horizon)
        keep = hour_numbers(data.X.index) % len(sizes) == k
        parts.append((with_move(data.X[keep]), data.y[keep], data.known_at[keep]))
    X, y, known = (pd.concat([part[i] for part in parts]) for i in range(3))  # noqa: N806
    order = np.argsort(X.index.asi8, kind="stable")  # one size per hour: a time series again
    return Dataset(X.iloc[order], y.iloc[order], known.iloc[order], data.outcomes)


def hour_numbers(index: pd.DatetimeIndex) -> np.ndarray:
    """Whole hours since 1970 (whatever the index's resolution: pandas keeps µs or ns)."""
    return np.asarray((index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(hours=1))


def with_move(matrix: pd.DataFrame) -> pd.DataFrame:
    """The barrier's size in units of a day's volatility as log z and its square and cube: the exit probability
    of a walk is an S-curve in log z at each t, which a logistic line alone bends too little."""
    z = np.log(matrix["barrier_z"].where(matrix["barrier_z"] > 0))
    return matrix.assign(move_z=z, move_z2=z ** 2, move_z3=z ** 3)


class AnySizeModel:
    """The pooled model, and its quantiles' rolling conformal corrections per size of the grid (interpolated in
    log size for the sizes between): src.models.estimators.serving's rule, on the forecasts an earlier fit made
    of each size's newest CORRECTION_DAYS."""

    def __init__(self, model: LogisticTime, sizes: tuple[float, ...], rules: list[ServingRule]):
        self.model, self.sizes, self.rules = model, sizes, rules

    def rule(self, move: float, horizon: int) -> ServingRule:
        shifts = [float(np.interp(np.log(move), np.log(self.sizes), [r.shifts[j] for r in self.rules]))
                  for j in range(3)]
        return ServingRule((6, 24, horizon), tuple(shifts))


def fit_any_size(samples: Dataset, horizon: int, recalibrate_days: int | None = None,
                 corrected: bool = True) -> AnySizeModel | LogisticTime:
    """The pooled model on every sample; with `corrected`, its per-size interval corrections too."""
    model = _fit(samples, horizon, recalibrate_days)
    if not corrected:
        return model
    newest = samples.X.index.max()
    recent = samples.X.index > newest - pd.Timedelta(days=CORRECTION_DAYS)
    early = samples.purged(newest - pd.Timedelta(days=CORRECTION_DAYS))
    if recent.sum() < MIN_CORRECTION * len(SIZE_GRID) or len(early.y) < MIN_RECALIBRATION:
        return AnySizeModel(model, SIZE_GRID, [ServingRule((6, 24, horizon))] * len(SIZE_GRID))
    before = _fit(early, horizon, recalibrate_days)
    rows = samples.X[recent]
    forecast = forecast_array(before, rows, horizon)
    size = np.round(rows["barrier_z"] * rows["vol_24"] * np.sqrt(24), 6).to_numpy()
    rules = []
    for grid_size in SIZE_GRID:
        mine = np.isclose(size, grid_size)
        evidence = Evidence(rows.index[mine], samples.y[recent].to_numpy(float)[mine], {MODEL_NAME: forecast[mine]})
        rules.append(ServingRule((6, 24, horizon), interval_shifts(evidence, MODEL_NAME, horizon, CORRECTION_DAYS,
                                                                    MIN_CORRECTION)))
    return AnySizeModel(model, SIZE_GRID, rules)


def _fit(samples: Dataset, horizon: int, recalibrate_days: int | None) -> LogisticTime:
    hours = samples.y.to_numpy(dtype=float)
    expired = ~np.isfinite(hours)
    return LogisticTime(FEATURES, recalibrate_days=recalibrate_days).fit(samples.X, np.where(expired, 0.0, hours),
                                                                         expired, horizon)


def forecast_move(model: AnySizeModel | LogisticTime, features: pd.DataFrame, move: float, horizon: int) -> np.ndarray:
    """(n, 6) how-soon forecasts of a `move` (e.g. 0.035) for each row of the features."""
    if isinstance(model, AnySizeModel):
        own = forecast_array(model.model, with_move(with_barrier(features, move)), horizon)
        return compose(own, None, model.rule(move, horizon), horizon)
    return forecast_array(model, with_move(with_barrier(features, move)), horizon)
