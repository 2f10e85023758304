"""Forecast quality: one function computes every figure the product stores and reports.

Plain numpy on purpose: it runs for every model, group and window of every daily job and training fold, where
scikit-learn's metrics spend most of their time validating their input (the same figures, see the tests)."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed up-share - mean forecast| over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    gap = np.abs(np.bincount(index, y, bins) - np.bincount(index, p, bins))  # per bin: count x |mean y - mean p|
    return float(gap[count > 0].sum() / len(y))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve: the chance that an up outcome got a higher forecast than a down one (ties half),
    from the ranks (Mann-Whitney U)."""
    positive = y == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(p)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _precision_recall_f1(y: np.ndarray, predicted: np.ndarray, label: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of one class (0 where undefined)."""
    true_positive = float(((predicted == label) & (y == label)).sum())
    said, actual = float((predicted == label).sum()), float((y == label).sum())
    precision = true_positive / said if said else 0.0
    recall = true_positive / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def forecast_metrics(y: np.ndarray, p: np.ndarray, climatology: float | np.ndarray) -> dict[str, float | int | None]:
    """AUC, Brier, Brier skill against the climatology forecast, log loss, ECE, accuracy, and precision,
    recall and F1 for UP and DOWN. `climatology` is the baseline's forecast (a share or an array)."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    n = len(y)
    if n == 0:
        return {"n": 0}
    clim = np.broadcast_to(np.asarray(climatology, dtype=float), y.shape)
    brier, brier_clim = float(np.mean((p - y) ** 2)), float(np.mean((clim - y) ** 2))
    predicted = (p >= 0.5).astype(float)
    precision_up, recall_up, f1_up = _precision_recall_f1(y, predicted, 1)
    precision_down, recall_down, f1_down = _precision_recall_f1(y, predicted, 0)
    both = len(np.unique(y)) == 2
    return {
        "n": n, "up_share": float(y.mean()),
        "auc": roc_auc(y, p) if both else None,
        "brier": brier,
        "brier_skill": float(1 - brier / brier_clim) if brier_clim > 0 else None,
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "ece": expected_calibration_error(y, p),
        "accuracy": float((predicted == y).mean()),
        "precision_up": precision_up, "precision_down": precision_down,
        "recall_up": recall_up, "recall_down": recall_down,
        "f1_up": f1_up, "f1_down": f1_down,
    }
