"""Forecast quality: one function computes every figure the product stores and reports."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, precision_recall_fscore_support, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed up-share - mean forecast| over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return total / len(y)


def forecast_metrics(y: np.ndarray, p: np.ndarray, climatology: float | np.ndarray) -> dict[str, float | int | None]:
    """AUC, Brier, Brier skill against the climatology forecast, log loss, ECE, accuracy, and precision,
    recall and F1 for UP and DOWN. `climatology` is the baseline's forecast (a share or an array)."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    n = len(y)
    if n == 0:
        return {"n": 0}
    clim = np.broadcast_to(np.asarray(climatology, dtype=float), y.shape)
    brier, brier_clim = brier_score_loss(y, p), brier_score_loss(y, clim)
    predicted = (p >= 0.5).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, labels=[1, 0], zero_division=0)
    both = len(np.unique(y)) == 2
    return {
        "n": n, "up_share": float(y.mean()),
        "auc": float(roc_auc_score(y, p)) if both else None,
        "brier": float(brier),
        "brier_skill": float(1 - brier / brier_clim) if brier_clim > 0 else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": float(expected_calibration_error(y, p)),
        "accuracy": float((predicted == y).mean()),
        "precision_up": float(precision[0]), "precision_down": float(precision[1]),
        "recall_up": float(recall[0]), "recall_down": float(recall[1]),
        "f1_up": float(f1[0]), "f1_down": float(f1[1]),
    }
