"""How-soon model research on the shared candles: candidate time models, each scored honestly.

Choices are judged on the choice periods, 2022-01..2022-06 (`--period choice`) and 2021-07..2022-06
(`--period long_choice`, which spans the 2021 -> 2022 change of volatility regime); the chosen variants are
then reported on 2022-07..2023-12 (`--period report`) without change. Retrain points every `--every`
days (default 14: cheaper than the product's weekly backtest, same purging and embargo). Scores as the
product stores them (src.models.evaluation.time_metrics): Brier skill of P(within 6 h / 24 h / H) against the
climatology time model refitted at every point, coverage of the 10-90 % interval, pinball skill of the
quantiles; and `bss_24h_frozen`, the 24 h skill against a climatology fitted once at the period's start
(the yardstick of issue #13's first measurement, which a stale base rate flatters).

Variants (the product's `vol_logistic` was chosen from these):
- random_walk: the free physics baseline.
- vol_only: one logistic regression per time on a grid, on log vol_24/72/168 and log atr_14 (the issue's
  first measurement used these four).
- equal_weights: the product's features (src.models.resolution.LOGISTIC_TIME_FEATURES: plus log atr_72,
  log range_ratio, vol_z_24, log btc_vol_24 and the hour's and weekday's cycles), every sample alike, no
  recalibration: `vol_logistic` until 2026-11-26.
- hl180: the same with sample weights halving every 180 days back.
- levels90: equal weights, quantile levels recalibrated on its own forecasts of the newest 90 days.
- vol_logistic: the product's, both.
Earlier results (bench/results/time_models_choice.txt): xgboost_aft, vol_calendar (vol_only plus the calendar
cycles), vol_only on the newest 365 days (no gain), levels recalibrated on the newest third (no gain),
recalibrating the whole distribution and not only the quantile levels (hurt P(within H)), and refusing a
slope where the rarer outcome has fewer than 10 events per feature (lost 6 h and 24 h skill), a slope per
grid time only where it beat the base rate on the newest 90 days (lost 6 h skill), and Parkinson, 6-hour and
30-day volatilities as more inputs (no gain).

Run: python bench/time_model_research.py --period choice  (about 1 minute on 2 cores; long_choice 2,
report 4)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.model_research import EMBARGO, PERIODS, H, candles, run_per_group  # noqa: E402
from src.data.features import compute_features  # noqa: E402
from src.models.estimators.dataset import build_dataset, build_time_dataset  # noqa: E402
from src.models.estimators.time_models import LogisticTime, forecast_array, make_time_model  # noqa: E402
from src.models.evaluation.time_metrics import time_metrics  # noqa: E402

VOL_ONLY = ("vol_24", "vol_72", "vol_168", "atr_14")
FROZEN = "climatology_frozen"  # fitted at the period's first point only


def variants(target: float) -> dict:
    return {"climatology": make_time_model("climatology", target),
            "random_walk": make_time_model("random_walk", target),
            "vol_only": LogisticTime(VOL_ONLY, half_life_days=None, recalibrate_days=None),
            "equal_weights": LogisticTime(half_life_days=None, recalibrate_days=None),
            "hl180": LogisticTime(recalibrate_days=None),
            "levels90": LogisticTime(half_life_days=None),
            "vol_logistic": make_time_model("vol_logistic", target)}


def fit_and_forecast(models: dict, train, X_test: pd.DataFrame, forecasts: dict[str, list],  # noqa: N803
                     seconds: dict[str, float]) -> dict:
    """Fit every model on `train` (resolution hours, censored at H), timing each, and append its forecasts of
    X_test; returns the fitted models."""
    hours = train.y.to_numpy(float)
    expired = ~np.isfinite(hours)
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(train.X, np.where(expired, 0.0, hours), expired, H)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        forecasts.setdefault(name, []).append(forecast_array(model, X_test, H))
    return models


def group_forecasts(asset: str, target: float, period: tuple, every: int) -> tuple:
    """Every variant's out-of-sample forecasts for one group over the period, retrained every `every` days."""
    raw = {a: candles(a) for a in {asset, "BTC_USDT"}}
    features = compute_features(raw[asset], raw["BTC_USDT"] if asset != "BTC_USDT" else None)
    data = build_time_dataset(build_dataset(raw[asset], features, target, H), features, target, H)
    points = pd.date_range(period[0], period[1], freq=f"{every}D", inclusive="left")
    forecasts: dict[str, list] = {}
    seconds: dict[str, float] = {}
    outcomes = []
    for i, point in enumerate(points):
        stop = points[i + 1] if i + 1 < len(points) else period[1]
        train = data.purged(point, EMBARGO)
        test = (data.X.index >= point) & (data.X.index < stop)
        fitted = fit_and_forecast(variants(target), train, data.X[test], forecasts, seconds)
        if i == 0:
            frozen = fitted["climatology"]
        forecasts.setdefault(FROZEN, []).append(forecast_array(frozen, data.X[test], H))
        outcomes.append(data.y[test].to_numpy(float))
    return asset, target, {k: np.vstack(v) for k, v in forecasts.items()}, np.concatenate(outcomes), seconds


def main() -> None:
    started = time.perf_counter()
    args, results = run_per_group(group_forecasts, __doc__)
    rows = []
    for asset, target, forecasts, hours, seconds in results:
        resolved_24h = float((hours <= 24).mean())
        for name, forecast in forecasts.items():
            if name in ("climatology", FROZEN):
                continue
            m = time_metrics(forecast, forecasts["climatology"], hours, H)
            frozen = time_metrics(forecast, forecasts[FROZEN], hours, H)
            expired = ~np.isfinite(hours)
            touched = np.where(expired, np.inf, hours - 0.5)
            rows.append({"group": f"{asset[:3]} {target:.0%}", "model": name, "n": m["n"],
                         "base_24h": resolved_24h, "base_H": float(np.isfinite(hours).mean()),
                         "bss_6h": m["brier_skill_6h"], "bss_24h": m["brier_skill_24h"],
                         "bss_H": m["brier_skill_horizon"], "bss_24h_frozen": frozen["brier_skill_24h"],
                         "coverage": m["interval_coverage"],
                         "pinball": m["pinball_skill"], "fit_s": seconds[name],
                         "below_q10": float(np.mean(~expired & (touched < forecast[:, 3]))),
                         "above_q90": float(np.mean(np.where(expired, forecast[:, 2] >= 0.9,
                                                             touched > forecast[:, 5])))})
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(f"{args.period} period {PERIODS[args.period][0]:%Y-%m-%d}..{PERIODS[args.period][1]:%Y-%m-%d}, "
          f"retrained every {args.every} days\n")
    print(table.round(3).to_string(index=False))
    print("\nmean per model:")
    means = ["bss_6h", "bss_24h", "bss_24h_frozen", "bss_H", "coverage", "below_q10", "above_q90", "pinball", "fit_s"]
    print(table.groupby("model")[means].mean().round(3).to_string())
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
