"""The two things the product forecasts for each asset x target, behind one interface, so training,
walk-forward validation, the champion rule, the backtest and the live cycle treat them alike:

- `direction`: P(UP), the up barrier touched before the down one (models: src.models.estimators.direction).
- `resolution`: how soon either barrier is touched (models: src.models.estimators.time_models).

Each task names its models simplest first (and the order the champion rule tries them in, when another), how to
build its samples from the shared outcomes, fit, forecast, the per-hour loss the champion rule compares, and the
metrics stored for it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.models.estimators.dataset import Dataset, build_time_dataset
from src.models.estimators.direction import fit_model, prob_up
from src.models.estimators.time_models import TIME_MODEL_NAMES, fit_time_model, forecast_array
from src.models.evaluation.scoring import direction_score, timing_score
from src.models.evaluation.time_metrics import time_loss


@dataclass(frozen=True)
class Task:
    name: str
    models: tuple[str, ...]  # simplest first
    samples: Callable[[Dataset, pd.DataFrame, float, int], Dataset]  # (labelled data, features, target, H)
    fit: Callable[[str, Dataset, int, float], object]  # (model name, train, H, target) -> fitted model
    predict: Callable[[object, pd.DataFrame, int], np.ndarray]  # (model, X, H) -> forecasts
    loss: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (forecasts, outcomes, H) -> per hour
    metrics: Callable[[np.ndarray, np.ndarray, np.ndarray, int], dict]  # (forecasts, climatology's, y, H)
    # the order in which the champion rule tries them (src.models.evaluation.selection): by default simplest first
    champion_order: tuple[str, ...] | None = None

    def forecasts(self, train: Dataset, X: pd.DataFrame, horizon: int, target: float) -> dict[str, np.ndarray]:  # noqa: N803
        """Every model of the task fitted on `train`, forecasting the rows of X."""
        return {name: self.predict(self.fit(name, train, horizon, target), X, horizon) for name in self.models}


def _time_fit(name: str, train: Dataset, horizon: int, target: float):
    hours = train.y.to_numpy(dtype=float)
    expired = ~np.isfinite(hours)
    return fit_time_model(name, train.X, np.where(expired, 0.0, hours), expired, target, horizon)


DIRECTION = Task(
    name="direction", models=("climatology", "logistic", "xgboost"),
    samples=lambda data, features, target, horizon: data,
    fit=lambda name, train, horizon, target: fit_model(name, train.X, train.y, horizon),
    predict=lambda model, X, horizon: prob_up(model, X),
    loss=lambda p, y, horizon: (p - y) ** 2,
    metrics=direction_score)

# How soon is learned first: a simpler model replaces vol_logistic only when significantly better. Simplest first,
# the calibrated garch took its place at a third of the retrain points on 2021-07..2022-06, where vol_logistic
# alone was better in every group: users lost up to 0.034 of 24 h skill (issue #33, bench/soon_round3.py).
RESOLUTION = Task(
    name="resolution", models=TIME_MODEL_NAMES,
    samples=lambda data, features, target, horizon: build_time_dataset(data, features, target, horizon),
    fit=_time_fit,
    predict=forecast_array,
    loss=time_loss,
    metrics=timing_score,
    champion_order=tuple(reversed(TIME_MODEL_NAMES)))

TASKS = (DIRECTION, RESOLUTION)
