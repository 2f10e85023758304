"""The independent work units of training and backtesting, run by an executor (src.utils.executors):

- `forecast_unit`: fit every model of a task on the samples known at a cut (minus the embargo) and
  forecast given rows: one walk-forward fold, or one backtest retrain point.
- `fit_unit`: fit every model of a task on everything known at a cut: the models training deploys.
- `any_size_unit`: an asset's how-soon model for any move size, on everything known at a cut.

Their inputs are a group's samples (shared by reference), a task's name, a cut and the rows to
forecast; their outputs are forecasts or fitted models, which the caller writes to the database. They
read nothing else, so any executor, in any order, gives the same results."""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.models.estimators.any_size import fit_any_size, size_samples
from src.models.estimators.dataset import Dataset, asset_features
from src.models.estimators.tasks import TASKS
from src.utils.errors import UserError
from src.utils.executors import resolve

TASK_BY_NAME = {task.name: task for task in TASKS}
Samples = dict[str, Dataset]  # one asset x target's samples, per task


def forecast_unit(samples: Samples, task_name: str, cut: pd.Timestamp, X: pd.DataFrame, target: float,  # noqa: N803
                  horizon: int, embargo_hours: int, window_days: int | None = None) -> dict[str, np.ndarray]:
    """Every model of the task fitted on the labels known by cut - embargo (of the `window_days` before the
    cut), forecasting the rows of X."""
    task = TASK_BY_NAME[task_name]
    train = resolve(samples)[task_name].purged(cut, embargo_hours, window_days)
    return task.forecasts(train, X, horizon, target)


def fit_unit(samples: Samples, task_name: str, as_of: pd.Timestamp, target: float, horizon: int,
             window_days: int | None = None) -> dict[str, object]:
    """Every model of the task fitted on all labels known at `as_of` (of the `window_days` before it)."""
    task = TASK_BY_NAME[task_name]
    known = resolve(samples)[task_name].purged(as_of, 0, window_days)
    return {name: task.fit(name, known, horizon, target) for name in task.models}


def any_size_unit(candles: dict[str, pd.DataFrame], symbol: str, as_of: pd.Timestamp, horizon: int,
                  unfillable: pd.DatetimeIndex, window_days: int | None,
                  min_samples: int) -> tuple[object, pd.Timestamp, int]:
    """The asset's how-soon model for any move size (src.models.estimators.any_size) fitted on every size's samples
    known at `as_of` (of the `window_days` before it), with those samples' times and count for its registry row."""
    candles = resolve(candles)
    samples = size_samples(candles[symbol], asset_features(candles, symbol), horizon,
                           unfillable).purged(as_of, 0, window_days)
    if len(samples.y) < min_samples:
        raise UserError(f"{len(samples.y)} samples over the sizes, need {min_samples}")
    return fit_any_size(samples, horizon), samples.X.index[0], len(samples.y)
