"""Training samples per asset x target, and purging: a model trained at a cut sees only labels known by it."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from src.data.features import CONTEXT_SYMBOL, compute_features, with_barrier
from src.data.labels import AMBIGUOUS, DOWN, EXPIRED, UP, barrier_outcomes, label_known_time
from src.utils.errors import UserError


@dataclass
class Dataset:
    X: pd.DataFrame  # noqa: N815 (the usual name)
    y: pd.Series
    known_at: pd.Series  # when each label became known
    outcomes: pd.DataFrame  # every entry hour, labelled or not

    def purged(self, cut: pd.Timestamp, embargo_hours: int = 0, window_days: int | None = None) -> Dataset:
        """Samples whose label was known by `cut - embargo`: what a model trained at `cut` may see; with
        `window_days` (ml.training_days), only those whose entry hour lies within that many days before `cut`."""
        keep = self.known_at <= cut - pd.Timedelta(hours=embargo_hours)
        if window_days is not None:
            keep &= self.X.index > cut - pd.Timedelta(days=window_days)
        return Dataset(self.X[keep], self.y[keep], self.known_at[keep], self.outcomes)

    def between(self, start: pd.Timestamp, end: pd.Timestamp) -> Dataset:
        """Samples with start <= entry time < end (labelled ones only)."""
        keep = (self.X.index >= start) & (self.X.index < end)
        return Dataset(self.X[keep], self.y[keep], self.known_at[keep], self.outcomes)


def asset_features(candles: dict[str, pd.DataFrame], symbol: str) -> pd.DataFrame:
    """The asset's features with BTC's context; an asset other than BTC without BTC candles is an error,
    never a silent stand-in of its own values for the btc_* features."""
    if symbol == CONTEXT_SYMBOL:
        return compute_features(candles[symbol])
    if CONTEXT_SYMBOL not in candles:
        raise UserError(f"{symbol}: no {CONTEXT_SYMBOL} candles stored for the btc_* context features; backfill "
                        f"(or import-csv) {CONTEXT_SYMBOL} too")
    return compute_features(candles[symbol], candles[CONTEXT_SYMBOL])


def build_dataset(candles: pd.DataFrame, features: pd.DataFrame, target: float, horizon: int = 168,
                  unfillable: pd.DatetimeIndex | None = None) -> Dataset:
    """Labelled samples (UP/DOWN only: ambiguous and expired are not training labels)."""
    outcomes = barrier_outcomes(candles, target, horizon, unfillable=unfillable)
    labelled = outcomes["status"].isin([UP, DOWN])
    index = outcomes.index[labelled].intersection(features.index)
    matrix = with_barrier(features.loc[index], target)
    return Dataset(matrix, outcomes.loc[index, "label"].astype(int), label_known_time(outcomes.loc[index], horizon),
                   outcomes)


def build_time_dataset(data: Dataset, features: pd.DataFrame, target: float, horizon: int = 168) -> Dataset:
    """Resolution-time samples from the same outcomes: every decided window (an ambiguous candle counts as
    a touch); y = hours until the touch, inf when the window expired (censored at H)."""
    outcomes = data.outcomes
    decided = outcomes["status"].isin([UP, DOWN, AMBIGUOUS, EXPIRED])
    index = outcomes.index[decided].intersection(features.index)
    hours = outcomes.loc[index, "hours_to_hit"].where(outcomes.loc[index, "status"] != EXPIRED, float("inf"))
    return Dataset(with_barrier(features.loc[index], target), hours.astype(float),
                   label_known_time(outcomes.loc[index], horizon), outcomes)
