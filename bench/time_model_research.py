"""How-soon model research on the shared candles: candidate time models, each scored honestly.

Choices are judged on 2022-01..2022-06 (the choice period, `--period choice`); the chosen variants are
then reported on 2022-07..2023-12 (`--period report`) without change. Retrain points every `--every`
days (default 14: cheaper than the product's weekly backtest, same purging and embargo). Scores as the
product stores them (src.models.resolution_metrics): Brier skill of P(within 6 h / 24 h / H) against the
climatology time model, coverage of the 10-90 % interval, pinball skill of the quantiles.

Variants (the product's `vol_logistic` was chosen from these on the choice period):
- random_walk: the free physics baseline; xgboost_aft: the learned model before vol_logistic.
- vol_only: one logistic regression per time on a grid, on log vol_24/72/168 and log atr_14.
- vol_calendar: the same plus the hour's and the weekday's cycles (volatility follows both).
- vol_logistic: the product's (src.models.resolution.LOGISTIC_TIME_FEATURES): vol_calendar plus log
  atr_72, log range_ratio (the last hour's range), vol_z_24 (volume surprise), log btc_vol_24.
Also tried, kept in bench/results/time_models_choice.txt: vol_only on the newest 365 days only (no gain);
vol_logistic with its quantile levels recalibrated on the newest third (fitted first without it): the share
below q10 / above q90 went from 0.083 / 0.110 to 0.108 / 0.078, coverage 0.778 -> 0.782, pinball skill
0.160 -> 0.149 (no gain, twice the cost).

Run: python bench/time_model_research.py --period choice  (about 5 minutes on 2 cores)
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
from src.models.dataset import build_dataset, build_time_dataset  # noqa: E402
from src.models.resolution import LogisticTime, forecast_array, make_time_model  # noqa: E402
from src.models.resolution_metrics import time_metrics  # noqa: E402

VOL_ONLY = ("vol_24", "vol_72", "vol_168", "atr_14")
CALENDAR = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")


def variants(target: float) -> dict:
    return {"climatology": make_time_model("climatology", target),
            "random_walk": make_time_model("random_walk", target),
            "xgboost_aft": make_time_model("xgboost_aft", target),
            "vol_only": LogisticTime(VOL_ONLY),
            "vol_calendar": LogisticTime(VOL_ONLY + CALENDAR),
            "vol_logistic": make_time_model("vol_logistic", target)}


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
        hours = train.y.to_numpy(float)
        expired = ~np.isfinite(hours)
        for name, model in variants(target).items():
            started = time.perf_counter()
            model.fit(train.X, np.where(expired, 0.0, hours), expired, H)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
            forecasts.setdefault(name, []).append(forecast_array(model, data.X[test], H))
        outcomes.append(data.y[test].to_numpy(float))
    return asset, target, {k: np.vstack(v) for k, v in forecasts.items()}, np.concatenate(outcomes), seconds


def main() -> None:
    started = time.perf_counter()
    args, results = run_per_group(group_forecasts, __doc__)
    rows = []
    for asset, target, forecasts, hours, seconds in results:
        resolved_24h = float((hours <= 24).mean())
        for name, forecast in forecasts.items():
            if name == "climatology":
                continue
            m = time_metrics(forecast, forecasts["climatology"], hours, H)
            expired = ~np.isfinite(hours)
            touched = np.where(expired, np.inf, hours - 0.5)
            rows.append({"group": f"{asset[:3]} {target:.0%}", "model": name, "n": m["n"],
                         "base_24h": resolved_24h, "base_H": float(np.isfinite(hours).mean()),
                         "bss_6h": m["brier_skill_6h"], "bss_24h": m["brier_skill_24h"],
                         "bss_H": m["brier_skill_horizon"], "coverage": m["interval_coverage"],
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
    print(table.groupby("model")[["bss_6h", "bss_24h", "bss_H", "coverage", "below_q10", "above_q90",
                                   "pinball", "fit_s"]].mean().round(3)
          .to_string())
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
