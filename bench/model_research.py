"""Direction-model research on the shared candles: ideas with a reason, each scored honestly.

Choices are judged on 2022-01..2022-06 (the choice period); the same variants are then reported on
2022-07..2023-12 (the report period) without change. Retrain points every `--every` days (default 61:
cheaper than the product's weekly backtest, same purging and embargo); every model is the product's
calibrated estimator. Brier skill against climatology with its 95 % block-bootstrap interval.

Variants:
- xgboost, logistic: the product's models and features.
- *_mom: plus time-series momentum over 1-4 weeks (log return / (vol_168 * sqrt(k)), k = 168..672 h),
  the effect documented by Moskowitz, Ooi and Pedersen (2012) and, for crypto, Liu and Tsyvinski (2021).
- pooled_xgboost: one model over 3 assets x 3 targets (9x the samples; the barrier in volatility units,
  `barrier_z`, and the target itself as features), forecasting each group.
- shrunk_xgboost: climatology + w (xgboost - climatology), w fitted by least squares on the earlier
  points' out-of-sample forecasts (0 until there are any), clipped to [0, 1].

Run: python bench/model_research.py  (about 10 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.features import compute_features, with_barrier  # noqa: E402
from src.models.estimators.dataset import build_dataset  # noqa: E402
from src.models.estimators.direction import fit_model, prob_up  # noqa: E402
from src.models.evaluation.selection import skill_interval  # noqa: E402
from tests.shared_data import load_candles  # noqa: E402

ASSETS = ("BTC_USDT", "ETH_USDT", "SOL_USDT")
TARGETS = (0.01, 0.02, 0.05)
H, EMBARGO = 168, 24
CHOICE = (pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2022-07-01", tz="UTC"))
REPORT = (pd.Timestamp("2022-07-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC"))
MOMENTUM = (168, 336, 504, 672)


# a second, longer choice period (still before the report period): it spans the 2021 -> 2022 regime change
LONG_CHOICE = (pd.Timestamp("2021-07-01", tz="UTC"), pd.Timestamp("2022-07-01", tz="UTC"))
PERIODS = {"choice": CHOICE, "long_choice": LONG_CHOICE, "report": REPORT}


def run_per_group(group_forecasts, doc: str) -> tuple[argparse.Namespace, list]:
    """The command line of the per-group research scripts (--period, --every) and their run: one call of
    group_forecasts(asset, target, period, every) per asset x target, on two processes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--period", choices=sorted(PERIODS), default="choice")
    parser.add_argument("--every", type=int, default=14, help="days between retrain points (14)")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args()
    return args, Parallel(n_jobs=2)(delayed(group_forecasts)(a, t, PERIODS[args.period], args.every)
                                    for a in ASSETS for t in TARGETS)


def candles(name: str) -> pd.DataFrame:
    frame = load_candles(name)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame


def momentum(frame: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    close = np.log(frame.set_index("timestamp")["close"]).reindex(features.index)
    extra = {f"tsmom_{k}": (close - close.shift(k)) / (features["vol_168"] * np.sqrt(k)) for k in MOMENTUM}
    return features.join(pd.DataFrame(extra))


def groups() -> dict:
    raw = {a: candles(a) for a in ASSETS}
    out = {}
    for asset in ASSETS:
        base = compute_features(raw[asset], raw["BTC_USDT"] if asset != "BTC_USDT" else None)
        mom = momentum(raw[asset], base)
        for target in TARGETS:
            data = build_dataset(raw[asset], base, target, H)
            extra = with_barrier(mom.loc[data.X.index], target)
            out[(asset, target)] = (data, extra)
    return out


def fit_predict(name: str, X: pd.DataFrame, y: pd.Series, test: pd.DataFrame) -> np.ndarray:  # noqa: N803
    return prob_up(fit_model(name, X, y, H), test)


def run(every: int) -> pd.DataFrame:
    data = groups()
    points = pd.date_range(CHOICE[0], REPORT[1], freq=f"{every}D", inclusive="left")
    rows = []
    for i, point in enumerate(points):
        stop = min(points[i + 1] if i + 1 < len(points) else REPORT[1], REPORT[1])
        started = time.perf_counter()
        pooled_X, pooled_y, tests = [], [], {}
        for (asset, target), (ds, mom) in data.items():
            known = ds.known_at <= point - pd.Timedelta(hours=EMBARGO)
            test = (ds.X.index >= point) & (ds.X.index < stop)
            if not test.any():
                continue
            X, y, Xt, yt = ds.X[known], ds.y[known], ds.X[test], ds.y[test]
            forecast = {"climatology": fit_predict("climatology", X, y, Xt),
                        "logistic": fit_predict("logistic", X, y, Xt),
                        "xgboost": fit_predict("xgboost", X, y, Xt),
                        "logistic_mom": fit_predict("logistic", mom[known], y, mom[test]),
                        "xgboost_mom": fit_predict("xgboost", mom[known], y, mom[test])}
            tests[(asset, target)] = (Xt.assign(target=target), yt, forecast)
            pooled_X.append(X.assign(target=target))
            pooled_y.append(y)
        order = np.argsort(np.concatenate([x.index.asi8 for x in pooled_X]), kind="stable")
        PX = pd.concat(pooled_X).iloc[order]  # noqa: N806 (time order, for the calibration splits)
        py = pd.concat(pooled_y).iloc[order]
        pooled = fit_model("xgboost", PX, py, H)
        for (asset, target), (Xt, yt, forecast) in tests.items():
            forecast["pooled_xgboost"] = prob_up(pooled, Xt)
            rows.append(pd.DataFrame({"asset": asset, "target": target, "point": point, "time": Xt.index,
                                      "y": yt.to_numpy(float), **forecast}))
        print(f"point {point:%Y-%m-%d}: {len(tests)} groups, {time.perf_counter() - started:.0f} s", flush=True)
    frame = pd.concat(rows, ignore_index=True)
    return add_shrunk(frame, data)


def add_shrunk(frame: pd.DataFrame, data: dict) -> pd.DataFrame:
    """w from least squares of (y - c) on (p - c) over forecasts whose labels were known at each point."""
    frame["shrunk_xgboost"] = frame["climatology"]
    for (asset, target), group in frame.groupby(["asset", "target"]):
        known_at = data[(asset, target)][0].known_at
        for point in group["point"].unique():
            earlier = group[known_at.reindex(group["time"]).to_numpy() <= point]
            now = group.index[group["point"] == point]
            if len(earlier) < 500:
                continue
            x = earlier["xgboost"] - earlier["climatology"]
            w = float(np.clip((x * (earlier["y"] - earlier["climatology"])).sum() / max((x * x).sum(), 1e-12), 0, 1))
            c = frame.loc[now, "climatology"]
            frame.loc[now, "shrunk_xgboost"] = c + w * (frame.loc[now, "xgboost"] - c)
    return frame


def table(frame: pd.DataFrame, period: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    part = frame[(frame["time"] >= period[0]) & (frame["time"] < period[1])]
    models = [c for c in frame.columns if c not in ("asset", "target", "point", "time", "y", "climatology")]
    rows = []
    for (asset, target), g in part.groupby(["asset", "target"]):
        times = pd.DatetimeIndex(g["time"])
        for m in models:
            skill = 1 - ((g[m] - g["y"]) ** 2).sum() / ((g["climatology"] - g["y"]) ** 2).sum()
            low, high = skill_interval(g["y"].to_numpy(), g[m].to_numpy(), g["climatology"].to_numpy(), times,
                                       replicates=1000)
            rows.append({"asset": asset[:3], "target": target, "model": m, "n": len(g), "bss": skill,
                         "low": low, "high": high})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=61, help="days between retrain points (61)")
    args = parser.parse_args()
    started = time.perf_counter()
    frame = run(args.every)
    for label, period in (("CHOICE 2022-01..2022-06", CHOICE), ("REPORT 2022-07..2023-12", REPORT)):
        result = table(frame, period)
        print(f"\n{label}: Brier skill vs climatology [95 % CI]")
        wide = result.assign(cell=result.apply(lambda r: f"{r.bss:+.4f} [{r.low:+.3f},{r.high:+.3f}]", axis=1))
        print(wide.pivot_table(index=["asset", "target"], columns="model", values="cell", aggfunc="first")
              .to_string())
        print("mean skill per model:", result.groupby("model")["bss"].mean().round(4).to_dict())
        print("groups above 0:", result[result["bss"] > 0].groupby("model").size().to_dict())
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
