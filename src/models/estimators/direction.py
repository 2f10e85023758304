"""The three models, one interface (scikit-learn's): fit(X, y) -> self, predict_proba(X) -> (n, 2).

`xgboost` is the product's model; `logistic` and `climatology` are the free baselines it must beat.
Calibration: scikit-learn's CalibratedClassifierCV (Platt) on one time-ordered split: the model is fitted
on the older part and the calibrator on the newest third, the label horizon apart, so the calibrator sees
the newest data and no label straddles the two. Fewer than `min_calibration_samples` cannot be calibrated
honestly and are refused with a clear reason. (Three splits with an ensemble cost 2.3x as much and gave
forecasts no better on 2022-01..06: bench/direction_cost_research.py.)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from src.utils.errors import UserError, stop_signals_held

MODEL_NAMES = ("xgboost", "logistic", "climatology")
MIN_CALIBRATION_FOLD = 100  # samples in the smallest model-fitting and calibration piece
# Chosen a priori and checked on data before 2022-07-01 only: shallow trees, strong regularisation,
# because hourly direction is close to a coin flip and deep trees memorise noise. 100 rounds at 0.06
# rather than 200 at 0.03: no measurable difference on 2022-01..06, half the time.
# One thread per fit: on these sizes (tens of thousands of hours x 30 features) a second OpenMP thread
# gains nothing on an idle machine and loses much beside other work (bench/threads.py); parallelism
# belongs to the level above (groups), not inside one small fit.
XGB_PARAMS = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.06, "subsample": 0.8,
              "colsample_bytree": 0.7, "min_child_weight": 50, "reg_lambda": 10.0, "tree_method": "hist",
              "n_jobs": 1, "verbosity": 0}


class ClimatologyModel(ClassifierMixin, BaseEstimator):
    """Forecasts the up-share of its training window, whatever the features: the free forecast."""

    def fit(self, X, y):  # noqa: N803 (scikit-learn's names)
        y = np.asarray(y, dtype=float)
        self.classes_ = np.array([0, 1])
        self.up_share_ = float(y.mean()) if len(y) else 0.5
        return self

    def predict_proba(self, X):  # noqa: N803
        p = np.full(len(X), self.up_share_)
        return np.column_stack([1 - p, p])


class TooFewSamples(UserError):
    """A training set too small to fit and calibrate a model with the horizon's gap."""


def min_calibration_samples(horizon: int) -> int:
    """The fewest samples a calibrated model accepts: a fitting piece and a calibration piece of
    MIN_CALIBRATION_FOLD each, the horizon apart."""
    return horizon + 3 * MIN_CALIBRATION_FOLD


def calibration_cv(n_samples: int, horizon: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The calibration split for `n_samples`: fit on the first part, calibrate on the newest third."""
    if n_samples < min_calibration_samples(horizon):
        raise TooFewSamples(f"{n_samples} samples are too few to calibrate a model with a {horizon} h gap; "
                            f"need at least {min_calibration_samples(horizon)} (more history)")
    test = n_samples // 3
    return [(np.arange(0, n_samples - test - horizon), np.arange(n_samples - test, n_samples))]


def _calibrated(estimator) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(estimator, method="sigmoid", ensemble=True)


def make_model(name: str):
    """A fresh, unfitted model by its product name."""
    if name == "climatology":
        return ClimatologyModel()
    if name == "logistic":
        # keep_empty_features: a column with no value in a small fitting piece (ret_168 in the first week) is
        # imputed as 0 instead of dropped with a warning, so every fit sees the same columns
        base = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                             LogisticRegression(C=0.05, max_iter=500))
        return _calibrated(base)
    if name == "xgboost":
        return _calibrated(XGBClassifier(**XGB_PARAMS))
    raise ValueError(f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}")


def fit_model(name: str, X: pd.DataFrame, y: pd.Series, horizon: int = 168):  # noqa: N803
    """A model by its product name, fitted on (X, y) with its calibration split."""
    model = make_model(name)
    if isinstance(model, CalibratedClassifierCV):
        split = calibration_cv(len(y), horizon)
        _check_both_outcomes(y, split)
        model.set_params(cv=split)
    # xgboost reads its training data through a ctypes callback into Python (its QuantileDMatrix iterator); a
    # stop raised in there is swallowed by ctypes and leaves xgboost's state corrupt (a segfault or malloc
    # abort), so a stop arriving during the fit is delivered right after it (0.4 s on three years of hours)
    with stop_signals_held():
        return model.fit(X, y)


def _check_both_outcomes(y: pd.Series, splits) -> None:
    """Every calibration piece needs UP and DOWN samples: a short, one-sided history cannot be fitted."""
    labels = np.asarray(y)
    for fit_rows, calibration_rows in splits:
        for part, rows in (("fitting", fit_rows), ("calibration", calibration_rows)):
            if len(np.unique(labels[rows])) < 2:
                side = "UP" if labels[rows][0] else "DOWN"
                raise TooFewSamples(f"the {len(rows)} samples of a {part} piece ({str(y.index[rows[0]])[:10]} .. "
                                    f"{str(y.index[rows[-1]])[:10]}) are all {side}; a calibrated model needs both "
                                    "outcomes in each piece (more history: ml.training_days)")


def prob_up(model, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    if isinstance(model, CalibratedClassifierCV) and isinstance(model.estimator, XGBClassifier):
        # the same numbers, without xgboost's per-column pandas checks (most of a one-row prediction's time)
        X = in_training_order(model, X).to_numpy(dtype=np.float32)  # noqa: N806
    return model.predict_proba(X)[:, 1]


def in_training_order(model, row: pd.DataFrame) -> pd.DataFrame:
    """The row's columns in the order the model was fitted with (a cached JSON row comes back sorted)."""
    names = getattr(model, "feature_names_in_", None)
    return row if names is None else row[list(names)]


def _xgboost_contributions(calibrated, row: pd.DataFrame) -> np.ndarray:
    from xgboost import DMatrix
    booster = calibrated.estimator.get_booster()
    return booster.predict(DMatrix(row, feature_names=list(row.columns)), pred_contribs=True)[0, :-1]


def _logistic_contributions(calibrated, row: pd.DataFrame) -> np.ndarray:
    """Coefficient x standardised value: each feature's share of the log-odds."""
    imputer, scaler, logistic = (step for _, step in calibrated.estimator.steps)
    standardised = scaler.transform(imputer.transform(row))[0]
    return logistic.coef_[0] * standardised


def explain(model_name: str, model, row: pd.DataFrame, top: int = 3) -> list[tuple[str, float]]:
    """The top feature contributions (log-odds) of one prediction by the model that made it, averaged over
    the calibration ensemble; largest magnitude first. xgboost: its SHAP values; logistic: coefficient x
    standardised value; climatology uses no features, so it has no reasons."""
    if model_name == "climatology":
        return []
    contribution = {"xgboost": _xgboost_contributions, "logistic": _logistic_contributions}[model_name]
    row = in_training_order(model, row)
    mean = np.mean([contribution(calibrated, row) for calibrated in model.calibrated_classifiers_], axis=0)
    order = np.argsort(-np.abs(mean))[:top]
    return [(row.columns[i], float(mean[i])) for i in order]
