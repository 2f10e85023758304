"""Cheaper direction fits, judged on the choice period: is the forecast any worse?

The direction models (calibrated logistic and xgboost) were most of a backtest's cost. Variants:
- before: the models as they were: calibration by an ensemble over three time-ordered splits (each the
  horizon apart; fits on 1/4, 1/2 and 3/4 of the data: 1.5 full fits), xgboost 200 rounds at 0.03.
- one_split: calibration on one time-ordered split (fit on the first part, calibrate on the newest
  third, the horizon apart: 0.67 of a full fit), xgboost as before.
- product: one split and xgboost with 100 rounds at 0.06 (src.models.estimators.direction today).

Scored on 2022-01..2022-06 (or `--period report`), retrained every `--every` days (14), same purging and
embargo as the product: each variant's Brier skill against climatology, and its skill against `before`
with the 95 % block-bootstrap interval (an interval containing 0: no measurable difference), plus its
fitting time. (Its first run, kept in bench/results/direction_cost_choice.txt, named `before` "product"
and today's product "one_split_100".)

Run: python bench/direction_cost_research.py  (about 5 minutes on 2 cores)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import TimeSeriesSplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.model_research import EMBARGO, H, candles, run_per_group  # noqa: E402
from src.data.features import compute_features  # noqa: E402
from src.models.estimators.dataset import build_dataset  # noqa: E402
from src.models.estimators.direction import calibration_cv, fit_model, make_model, prob_up  # noqa: E402
from src.models.evaluation.selection import skill_interval  # noqa: E402


def fit_variant(variant: str, name: str, X: pd.DataFrame, y: pd.Series):  # noqa: N803
    if variant == "product" or name == "climatology":
        return fit_model(name, X, y, H)
    model = make_model(name)
    assert isinstance(model, CalibratedClassifierCV)
    if name == "xgboost":
        model.estimator.set_params(n_estimators=200, learning_rate=0.03)
    split = TimeSeriesSplit(n_splits=3, gap=H) if variant == "before" else calibration_cv(len(y), H)
    return model.set_params(cv=split).fit(X, y)


def group_forecasts(asset: str, target: float, period: tuple, every: int) -> pd.DataFrame:
    raw = {a: candles(a) for a in {asset, "BTC_USDT"}}
    features = compute_features(raw[asset], raw["BTC_USDT"] if asset != "BTC_USDT" else None)
    data = build_dataset(raw[asset], features, target, H)
    points = pd.date_range(period[0], period[1], freq=f"{every}D", inclusive="left")
    frames, seconds = [], {}
    for i, point in enumerate(points):
        stop = points[i + 1] if i + 1 < len(points) else period[1]
        train = data.purged(point, EMBARGO)
        test = (data.X.index >= point) & (data.X.index < stop)
        columns = {}
        for variant in ("before", "one_split", "product"):
            for name in ("climatology", "logistic", "xgboost"):
                if name == "climatology" and variant != "before":
                    continue
                started = time.perf_counter()
                model = fit_variant(variant, name, train.X, train.y)
                seconds[(variant, name)] = seconds.get((variant, name), 0.0) + time.perf_counter() - started
                columns[(variant, name)] = prob_up(model, data.X[test])
        frames.append(pd.DataFrame({"y": data.y[test].to_numpy(float), **{f"{v}|{n}": p for (v, n), p in
                                                                          columns.items()}}, index=data.X.index[test]))
    frame = pd.concat(frames)
    frame.attrs.update(asset=asset, target=target, seconds=seconds)
    return frame


def main() -> None:
    started = time.perf_counter()
    args, frames = run_per_group(group_forecasts, __doc__)
    rows = []
    for frame in frames:
        y, times, climatology = frame["y"].to_numpy(), pd.DatetimeIndex(frame.index), frame["before|climatology"]
        for column in frame.columns.drop("y"):
            variant, name = column.split("|")
            if name == "climatology":
                continue
            p = frame[column].to_numpy()
            before = frame[f"before|{name}"].to_numpy()
            skill = 1 - ((p - y) ** 2).sum() / ((climatology - y) ** 2).sum()
            vs_before = 1 - ((p - y) ** 2).sum() / ((before - y) ** 2).sum()
            low, high = skill_interval(y, p, before, times, replicates=1000)
            rows.append({"group": f"{frame.attrs['asset'][:3]} {frame.attrs['target']:.0%}", "model": name,
                         "variant": variant, "n": len(y), "bss": skill, "vs_before": vs_before,
                         "vs_low": low, "vs_high": high, "fit_s": frame.attrs["seconds"][(variant, name)]})
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(f"{args.period} period, retrained every {args.every} days\n")
    print(table.round(4).to_string(index=False))
    print("\nmean per model and variant:")
    print(table.groupby(["model", "variant"])[["bss", "vs_before", "fit_s"]].mean().round(4).to_string())
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
