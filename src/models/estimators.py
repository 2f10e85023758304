"""The three models, one interface (scikit-learn's): fit(X, y) -> self, predict_proba(X) -> (n, 2).

`xgboost` is the product's model; `logistic` and `climatology` are the free baselines it must beat.
Calibration: scikit-learn's CalibratedClassifierCV with a TimeSeriesSplit whose `gap` is the label
horizon, so every calibrator is fitted on later data than its model and no label straddles the two.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

MODEL_NAMES = ("xgboost", "logistic", "climatology")
CALIBRATION_SPLITS = 3
# Chosen a priori and checked on data before 2022-07-01 only: shallow trees, strong regularisation,
# because hourly direction is close to a coin flip and deep trees memorise noise.
XGB_PARAMS = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.03, "subsample": 0.8,
              "colsample_bytree": 0.7, "min_child_weight": 50, "reg_lambda": 10.0, "tree_method": "hist",
              "n_jobs": 2, "verbosity": 0}


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


def _calibrated(estimator, horizon: int) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(estimator, method="sigmoid", ensemble=True,
                                  cv=TimeSeriesSplit(n_splits=CALIBRATION_SPLITS, gap=horizon))


def make_model(name: str, horizon: int = 168):
    """A fresh, unfitted model by its product name."""
    if name == "climatology":
        return ClimatologyModel()
    if name == "logistic":
        base = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                             LogisticRegression(C=0.05, max_iter=500))
        return _calibrated(base, horizon)
    if name == "xgboost":
        return _calibrated(XGBClassifier(**XGB_PARAMS), horizon)
    raise ValueError(f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}")


def prob_up(model, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


def explain(model, row: pd.DataFrame, top: int = 3) -> list[tuple[str, float]]:
    """Top feature contributions (log-odds, SHAP values from xgboost) of one xgboost prediction,
    averaged over the calibration ensemble's boosters; largest magnitude first."""
    from xgboost import DMatrix
    contributions = []
    for calibrated in model.calibrated_classifiers_:
        booster = calibrated.estimator.get_booster()
        contributions.append(booster.predict(DMatrix(row, feature_names=list(row.columns)),
                                             pred_contribs=True)[0, :-1])
    mean = np.mean(contributions, axis=0)
    order = np.argsort(-np.abs(mean))[:top]
    return [(row.columns[i], float(mean[i])) for i in order]
