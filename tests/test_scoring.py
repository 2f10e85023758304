"""The one scoring (src.models.evaluation.scoring): a hand-computed case, the reference never filled from
outcomes, the champion series taken from the flag, and the backtest table and live performance agreeing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.models.evaluation.scoring import CHAMPION, DIRECTION_ROWS, TIMING_ROWS, score_rows
from src.models.live.performance import window_rows

HOURS = pd.date_range("2023-01-01", periods=4, freq="h", tz="UTC")


def _tiled(frame: pd.DataFrame, copies: int, every: pd.Timedelta = pd.Timedelta(hours=4)) -> pd.DataFrame:
    """The hand-made hours repeated `copies` times, `every` apart: enough forecasts to be scored (small_sample), the
    same figures (every sum scales alike)."""
    return pd.concat([frame.assign(timestamp=frame["timestamp"] + k * every) for k in range(copies)],
                     ignore_index=True)


def _direction(model: str, p: list[float], champion: list[bool], status: list) -> pd.DataFrame:
    outcome = [1.0 if s == "up" else 0.0 if s == "down" else np.nan for s in status]
    return pd.DataFrame({"symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.02, "timestamp": HOURS,
                         "model_name": model, "is_champion": champion, "probability": p, "status": status,
                         "actual_outcome": outcome, "time_to_target_hours": [3.0, 5.0, 2.0, np.nan]})


def test_direction_scores_by_hand_and_the_champion_series_follows_the_flag():
    status = ["up", "down", "up", None]  # the last hour is still pending
    rows = _tiled(pd.concat([_direction("climatology", [0.5] * 4, [True, False, False, False], status),
                             _direction("xgboost", [0.8, 0.4, 0.6, 0.7], [False, True, True, True], status)]), 7)
    table = score_rows(DIRECTION_ROWS, rows, 168).set_index("model_name")
    brier_clim = np.mean([(0.5 - 1) ** 2, 0.5 ** 2, 0.25])
    brier_xgb = np.mean([(0.8 - 1) ** 2, 0.4 ** 2, (0.6 - 1) ** 2])
    assert table.loc["xgboost", "brier_skill"] == pytest.approx(1 - brier_xgb / brier_clim)
    champion = np.mean([(0.5 - 1) ** 2, 0.4 ** 2, (0.6 - 1) ** 2])  # climatology's hour, then xgboost's
    assert table.loc[CHAMPION, "brier_skill"] == pytest.approx(1 - champion / brier_clim)
    assert table.loc[CHAMPION, "n"] == 3 * 7 and table.loc[CHAMPION, "pending_predictions"] == 7
    few = score_rows(DIRECTION_ROWS, rows.iloc[:8], 168).set_index("model_name")  # 3 scored: too few, n/a
    assert pd.isna(few.loc["xgboost", "brier_skill"]) and few.loc["xgboost", "n"] == 3
    assert table.loc["climatology", "brier_skill"] == 0.0


def test_an_hour_without_a_climatology_forecast_is_left_out_never_filled_from_outcomes():
    status = ["up", "down", "up", "up"]
    clim = _direction("climatology", [0.5] * 4, [False] * 4, status).iloc[:2]  # none for the last two hours
    xgb = _direction("xgboost", [0.8, 0.4, 0.6, 0.7], [True] * 4, status)
    table = score_rows(DIRECTION_ROWS, _tiled(pd.concat([clim, xgb]), 10), 168).set_index("model_name")
    assert table.loc["xgboost", "n"] == 2 * 10
    assert table.loc["xgboost", "brier_skill"] == pytest.approx(1 - np.mean([0.04, 0.16]) / 0.25)


def test_live_performance_rows_are_the_backtest_tables_figures():
    """The daily performance and the backtest table are one function: same rows, same figures."""
    rng = np.random.default_rng(3)
    hours = pd.date_range("2023-01-01", periods=300, freq="h", tz="UTC")
    status = rng.choice(["up", "down", "expired"], size=len(hours))
    frames = []
    for name, p in (("climatology", np.full(len(hours), 0.5)), ("xgboost", rng.uniform(0.2, 0.8, len(hours)))):
        frames.append(pd.DataFrame({
            "symbol": "ETH/USDT", "timeframe": "1h", "target_pct": 0.01, "timestamp": hours, "model_name": name,
            "is_champion": name == "xgboost", "probability": p, "status": status,
            "actual_outcome": np.where(status == "up", 1.0, np.where(status == "down", 0.0, np.nan)),
            "time_to_target_hours": np.where(status == "expired", np.nan, 5.0)}))
    rows = pd.concat(frames)
    as_of = hours[-1] + pd.Timedelta(days=30)
    table = score_rows(DIRECTION_ROWS, rows, 168, as_of, interval=True).set_index("model_name")
    live = {r["model_name"]: r for r in window_rows(DIRECTION_ROWS, "direction", rows, as_of, 168)}
    for name in ("climatology", "xgboost", CHAMPION):
        for column in ("brier", "brier_skill", "auc", "ece", "hit_rate"):
            assert live[name][column] == pytest.approx(table.loc[name, column], nan_ok=True)
        assert live[name]["total_predictions"] == table.loc[name, "n"]
    xgboost = table.loc["xgboost"]
    assert xgboost["skill_low"] <= xgboost["brier_skill"] <= xgboost["skill_high"]


def test_timing_scores_use_the_same_alignment():
    frame = pd.DataFrame({"symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.05, "timestamp": HOURS[:2],
                          "status": ["up", "expired"], "hours_to_resolution": [10.0, np.nan],
                          "p_6h": 0.1, "p_24h": 0.5, "p_horizon": 0.9, "q10_hours": 5.0, "q50_hours": 24.0,
                          "q90_hours": 160.0})
    rows = pd.concat([frame.assign(model_name="climatology", is_champion=False),
                      frame.assign(model_name="vol_logistic", is_champion=True, p_24h=0.8)])
    table = score_rows(TIMING_ROWS, _tiled(rows, 12, pd.Timedelta(days=1)), 168, interval=True).set_index("model_name")
    # within 24 h: the first window yes (10 h), the second no (expired); 24 forecasts over 12 days: two weekly blocks
    assert table.loc["vol_logistic", "brier_skill_24h"] == pytest.approx(1 - (0.2 ** 2 + 0.8 ** 2) / (2 * 0.25))
    assert table.loc["vol_logistic", "within_24h"] == 0.5 and table.loc[CHAMPION, "n"] == 2 * 12


def test_an_undefined_figure_is_stored_as_null_never_nan():
    """One outcome only: AUC is undefined; the live row holds None (NULL), as before the scoring moved."""
    status = ["up"] * 4
    rows = pd.concat([_direction("climatology", [0.5] * 4, [False] * 4, status),
                      _direction("xgboost", [0.8, 0.4, 0.6, 0.7], [True] * 4, status)])
    live = {r["model_name"]: r for r in window_rows(DIRECTION_ROWS, "direction", rows, HOURS[-1], 168)}
    assert live["xgboost"]["auc"] is None
    assert not any(isinstance(v, float) and v != v for row in live.values() for v in row.values())


def test_direction_figures_are_scikit_learns():
    """The figures are computed with numpy (scikit-learn's input checks cost most of a daily job's scoring): each
    equals scikit-learn's on random forecasts, forecasts with ties, all-equal ones and one-class outcomes."""
    from sklearn.metrics import brier_score_loss, log_loss, precision_recall_fscore_support, roc_auc_score

    from src.models.evaluation.direction_metrics import forecast_metrics
    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(2, 300))
        y = (rng.random(n) < [0.5, 0.05, 1.0, 0.0][trial % 4]).astype(float)
        p = [rng.random(n), np.round(rng.random(n), 1), np.full(n, 0.5)][trial % 3]
        clim = rng.random() if trial % 2 else rng.random(n)
        got = forecast_metrics(y, p, clim)
        clipped = np.clip(p, 1e-6, 1 - 1e-6)
        predicted = (clipped >= 0.5).astype(int)
        precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, labels=[1, 0], zero_division=0)
        brier, brier_clim = brier_score_loss(y, clipped), brier_score_loss(y, np.broadcast_to(clim, y.shape))
        want = {"brier": brier, "log_loss": log_loss(y, clipped, labels=[0, 1]), "accuracy": (predicted == y).mean(),
                "brier_skill": 1 - brier / brier_clim if brier_clim > 0 else None,
                "auc": roc_auc_score(y, clipped) if len(np.unique(y)) == 2 else None,
                "precision_up": precision[0], "precision_down": precision[1], "recall_up": recall[0],
                "recall_down": recall[1], "f1_up": f1[0], "f1_down": f1[1]}
        for name, value in want.items():
            assert (got[name] is None) == (value is None), (trial, name)
            if value is not None:
                assert got[name] == pytest.approx(value, abs=1e-12), (trial, name)


def test_a_table_read_before_any_fate_is_known_prints_n_a():
    """A backtest of the newest day, its candles ending with it: no 24-hour fate is known yet, so no group has a
    how-soon figure at all. Its table says n/a, not a traceback (it raised AttributeError before)."""
    from src.models.offline.backtest import format_resolution_table, format_table
    frame = pd.DataFrame({"symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.05, "timestamp": HOURS,
                          "status": None, "hours_to_resolution": np.nan, "p_6h": 0.1, "p_24h": 0.5, "p_horizon": 0.9,
                          "q10_hours": 5.0, "q50_hours": 24.0, "q90_hours": 160.0})
    rows = pd.concat([frame.assign(model_name="climatology", is_champion=True)])
    table = score_rows(TIMING_ROWS, rows, 168, as_of=HOURS[-1] + pd.Timedelta(hours=1), interval=True)
    assert "brier_skill_24h" not in table.columns  # nothing scored: the figure is absent, not NaN
    shown = format_resolution_table(table).splitlines()
    assert len(shown) == 1 + 2 and all("n/a" in line for line in shown[1:])  # climatology and the champion series
    pending = _direction("climatology", [0.5] * 4, [True] * 4, [None] * 4)
    direction = format_table(score_rows(DIRECTION_ROWS, pending, 168, as_of=HOURS[-1], interval=True)).splitlines()
    assert len(direction) == 1 + 2 and all("n/a" in line for line in direction[1:])
