"""How soon for any move size (issue #26 item 4): the pooled per-asset model (src.models.estimators.any_size),
walked forward on the shared candles and scored on sizes it never saw (3 %, 7 %) and on the configured ones.

At monthly retrain points over the period the pooled model is fitted per asset on every size of SIZE_GRID known
at the point (purged, with the embargo), and so are, per size scored, the climatology time model (the yardstick)
and the per-target `vol_logistic` (what a configured target serves; at 3 % and 7 %, a diagnostic: what a model
fitted on that size alone would score). Reported per asset and size: Brier skill of
P(within 24 h) against that size's climatology with its 95 % interval (7-day blocks), of P(within 6 h), the
interval's coverage beside the share it claimed (0.8 closed, 0.9 open: time_metrics), their gap per half-year, and
pinball skill. Issue #33 judges the pooled model at 7 % against `per_target` there (a model fitted on 7 % alone):
within 0.02 of its 24 h skill, its coverage within 0.05 of its own claim.

`pooled`: the product's, with its per-size rolling conformal interval; `pooled_plain`: without it. (The in-fit
recalibration of quantile levels was rejected first: bench/results/any_size_choice.txt, where `pooled` was that
and `pooled_plain` the model as served before the per-size correction.)

Run: python bench/any_size_research.py --period report   (about 5 minutes on 2 cores)
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

from bench.model_research import EMBARGO, PERIODS, H, candles  # noqa: E402
from bench.soon_research import half_year  # noqa: E402
from src.data.features import compute_features  # noqa: E402
from src.models.estimators.any_size import fit_any_size, forecast_move, size_samples  # noqa: E402
from src.models.estimators.dataset import build_dataset, build_time_dataset  # noqa: E402
from src.models.estimators.time_models import forecast_array, make_time_model  # noqa: E402
from src.models.evaluation.selection import skill_interval  # noqa: E402
from src.models.evaluation.time_metrics import claimed_coverage, interval_coverage, time_metrics  # noqa: E402

ASSETS = ("BTC_USDT", "ETH_USDT", "SOL_USDT")
SIZES = (0.01, 0.02, 0.03, 0.05, 0.07)  # 3 % and 7 %: not in the grid, not configured


def _fit(model, data):
    hours = data.y.to_numpy(float)
    expired = ~np.isfinite(hours)
    return model.fit(data.X, np.where(expired, 0.0, hours), expired, H)


def asset_forecasts(asset: str, period: tuple, every: int) -> tuple:
    raw = {a: candles(a) for a in {asset, "BTC_USDT"}}
    features = compute_features(raw[asset], raw["BTC_USDT"] if asset != "BTC_USDT" else None)
    pooled = size_samples(raw[asset], features, H)
    per_size = {s: build_time_dataset(build_dataset(raw[asset], features, s, H), features, s, H) for s in SIZES}
    points = pd.date_range(period[0], period[1], freq=f"{every}D", inclusive="left")
    out: dict[tuple[float, str], list] = {}
    outcomes: dict[float, list] = {}
    times: dict[float, list] = {}
    seconds = 0.0
    for i, point in enumerate(points):
        stop = points[i + 1] if i + 1 < len(points) else period[1]
        started = time.perf_counter()
        model = fit_any_size(pooled.purged(point, EMBARGO), H)
        seconds += time.perf_counter() - started
        plain = fit_any_size(pooled.purged(point, EMBARGO), H, corrected=False)
        for size, data in per_size.items():
            test = (data.X.index >= point) & (data.X.index < stop)
            rows = features.loc[data.X.index[test]]
            train = data.purged(point, EMBARGO)
            out.setdefault((size, "pooled"), []).append(forecast_move(model, rows, size, H))
            out.setdefault((size, "pooled_plain"), []).append(forecast_move(plain, rows, size, H))
            out.setdefault((size, "climatology"), []).append(
                forecast_array(_fit(make_time_model("climatology", size), train), data.X[test], H))
            # per target: what a configured target serves; at 3 % and 7 %, what a model of that size alone would
            out.setdefault((size, "per_target"), []).append(
                forecast_array(_fit(make_time_model("vol_logistic", size), train), data.X[test], H))
            outcomes.setdefault(size, []).append(data.y[test].to_numpy(float))
            times.setdefault(size, []).append(data.X.index[test])
    return asset, {k: np.vstack(v) for k, v in out.items()}, {s: np.concatenate(v) for s, v in outcomes.items()}, \
        {s: v[0].append(v[1:]) for s, v in times.items()}, seconds / len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", choices=sorted(PERIODS), default="report")
    parser.add_argument("--every", type=int, default=30)
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args()
    started = time.perf_counter()
    results = Parallel(n_jobs=2)(delayed(asset_forecasts)(a, PERIODS[args.period], args.every) for a in ASSETS)
    rows = []
    for asset, forecasts, outcomes, times, fit_s in results:
        for size in SIZES:
            hours, index = outcomes[size], times[size]
            clim = forecasts[(size, "climatology")]
            halves = half_year(index)
            for name in ("pooled", "pooled_plain", "per_target"):
                if (size, name) not in forecasts:
                    continue
                forecast = forecasts[(size, name)]
                m = time_metrics(forecast, clim, hours, H)
                low, high = skill_interval((hours <= 24).astype(float), forecast[:, 1], clim[:, 1], index)
                covered, claimed = interval_coverage(forecast, hours, H), claimed_coverage(forecast[:, 5], H)
                row = {"asset": asset[:3], "size": f"{size:.0%}", "model": name, "n": m["n"],
                       "base_24h": float((hours <= 24).mean()), "bss_6h": m["brier_skill_6h"],
                       "bss_24h": m["brier_skill_24h"], "ci_low": low, "ci_high": high,
                       "coverage": m["interval_coverage"], "claimed": m["interval_claimed"],
                       "pinball": m["pinball_skill"],
                       "fit_s": fit_s if name == "pooled" else None}
                row |= {f"gap_{h}": float(covered[halves == h].mean() - claimed[halves == h].mean())
                        for h in sorted(set(halves))}  # coverage against what the intervals claimed (issue #33)
                rows.append(row)
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)
    pd.set_option("display.width", 250)
    print(f"{args.period} period {PERIODS[args.period][0]:%Y-%m-%d}..{PERIODS[args.period][1]:%Y-%m-%d}, "
          f"retrained every {args.every} days; pooled grid without 3 % and 7 %\n")
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
