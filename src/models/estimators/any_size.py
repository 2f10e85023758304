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
from src.models.estimators.time_models import LOGISTIC_TIME_FEATURES, LogisticTime, forecast_array
from src.utils.choices import BadInput

# 3 % and 7 % are left out on purpose: the report scores the model there, on sizes it never saw
SIZE_GRID = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.04, 0.05, 0.06, 0.08, 0.10)
MIN_MOVE, MAX_MOVE = 0.005, 0.10
MODEL_NAME = TASK = "any_size"
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


def fit_any_size(samples: Dataset, horizon: int, recalibrate_days: int | None = None) -> LogisticTime:
    hours = samples.y.to_numpy(dtype=float)
    expired = ~np.isfinite(hours)
    return LogisticTime(FEATURES, recalibrate_days=recalibrate_days).fit(samples.X, np.where(expired, 0.0, hours),
                                                                         expired, horizon)


def forecast_move(model: LogisticTime, features: pd.DataFrame, move: float, horizon: int) -> np.ndarray:
    """(n, 6) how-soon forecasts of a `move` (e.g. 0.035) for each row of the features."""
    return forecast_array(model, with_move(with_barrier(features, move)), horizon)
