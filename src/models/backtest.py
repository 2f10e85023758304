"""Walk-forward backtest: at each retrain point train on what was known then (purged, embargoed), predict
every hour until the next point, store the predictions (run_type 'backtest') and their outcomes, and
report metrics per asset x target x model. The same label function resolves live predictions.

The product's own forecast is stored too, as model_name 'champion': at each retrain point the champion
is chosen by the product's rule (src.models.selection) from the out-of-sample forecasts whose labels were
known then, over the span training validates on (n_folds x fold_days): before the first point these are
training's walk-forward folds, afterwards the backtest's own earlier forecasts."""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from src.data.features import FEATURE_VERSION, with_barrier
from src.data.labels import DOWN, UP, barrier_outcomes
from src.database.records import RecordStore
from src.models.dataset import asset_features, build_dataset
from src.models.estimators import MODEL_NAMES, fit_model, prob_up
from src.models.metrics import forecast_metrics
from src.models.selection import Evidence, choose_champion, skill_interval
from src.models.training import TrainSettings, walk_forward

log = logging.getLogger(__name__)
RUN = "backtest"
CHAMPION = "champion"
SCORED = (*MODEL_NAMES, CHAMPION)


def prediction_rows(symbol: str, timeframe: str, target: float, model_name: str, version: str,
                    times: pd.DatetimeIndex, p: np.ndarray, entry: np.ndarray, champion: bool,
                    run_type: str) -> pd.DataFrame:
    """Prediction rows as DESIGN.md defines them: class = p >= 0.5, confidence = max(p, 1 - p)."""
    p = np.round(p, 6)
    return pd.DataFrame({
        "run_type": run_type, "symbol": symbol, "timeframe": timeframe, "target_pct": target, "timestamp": times,
        "model_name": model_name, "model_version": version, "feature_version": FEATURE_VERSION,
        "is_champion": champion, "prediction_class": (p >= 0.5).astype(int), "probability": p,
        "confidence": np.maximum(p, 1 - p), "entry_price": entry})


def outcome_rows(symbol: str, timeframe: str, target: float, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Decided outcomes in the shape RecordStore.save_outcomes takes (pending ones left out)."""
    decided = outcomes[outcomes["status"].isin([UP, DOWN, "ambiguous", "expired"])]
    return pd.DataFrame({
        "symbol": symbol, "timeframe": timeframe, "target_pct": target, "timestamp": decided.index,
        "status": decided["status"].to_numpy(), "actual_outcome": decided["label"].astype("Int64").array,
        "target_hit_timestamp": decided["hit_time"].to_numpy(),
        "time_to_target_hours": decided["hours_to_hit"].to_numpy(),
        "max_favorable_move": decided["max_favorable_move"].to_numpy(),
        "max_adverse_move": decided["max_adverse_move"].to_numpy()})


def run_backtest(candles: dict[str, pd.DataFrame], symbols: list[str], targets: list[float],
                 start: pd.Timestamp, end: pd.Timestamp, records: RecordStore, settings: TrainSettings,
                 retrain_every_days: int = 7, progress: Callable[[], None] | None = None,
                 unfillable: dict[str, pd.DatetimeIndex] | None = None) -> pd.DataFrame:
    """Run the backtest over [start, end) and return the metrics table. `unfillable`: per symbol, the hours
    recorded as never published by the exchange (training's and live outcomes' rule: only those are
    missing for good; any other missing hour leaves its windows undecided)."""
    points = pd.date_range(start, end, freq=f"{retrain_every_days}D", inclusive="left")
    records.delete_predictions(RUN, start, end, symbols)
    for symbol in symbols:
        features = asset_features(candles, symbol)
        close = candles[symbol].set_index("timestamp")["close"]
        gaps = (unfillable or {}).get(symbol, pd.DatetimeIndex([], tz="UTC"))
        for target in targets:
            data = build_dataset(candles[symbol], features, target, settings.horizon, gaps)
            evidence = sum((ev for _, ev in walk_forward(data, start, settings)), Evidence.empty(MODEL_NAMES))
            frames = []
            for point in points:
                stop = min(point + pd.Timedelta(days=retrain_every_days), end)
                hours = features.index[(features.index >= point) & (features.index < stop)]
                train = data.purged(point, settings.embargo_hours)
                if len(hours) == 0 or len(train.y) < settings.needed_samples:
                    continue
                matrix = with_barrier(features.loc[hours], target)
                forecasts = {name: prob_up(fit_model(name, train.X, train.y, settings.horizon), matrix)
                             for name in MODEL_NAMES}
                champion = _champion_at(evidence, data, point, settings)
                entry = close.loc[hours].to_numpy()
                for name, p in forecasts.items():
                    frames.append(prediction_rows(symbol, settings.timeframe, target, name, f"{RUN}-{point:%Y%m%d}",
                                                  hours, p, entry, False, RUN))
                frames.append(prediction_rows(symbol, settings.timeframe, target, CHAMPION,
                                              f"{RUN}-{point:%Y%m%d}-{champion}", hours, forecasts[champion], entry,
                                              True, RUN))
                evidence = evidence + _labelled_forecasts(data, hours, forecasts)
                if progress:
                    progress()
            if frames:
                records.save_predictions(pd.concat(frames, ignore_index=True))
            outcomes = barrier_outcomes(candles[symbol], target, settings.horizon, unfillable=gaps)
            in_range = outcomes[(outcomes.index >= start) & (outcomes.index < end)]
            records.save_outcomes(outcome_rows(symbol, settings.timeframe, target, in_range), RUN)
            log.info("backtest %s %g: %d retrain points done", symbol, target, len(points))
    return metrics_table(records.resolved(RUN, start, end), settings.horizon)


def _champion_at(evidence: Evidence, data, point: pd.Timestamp, settings: TrainSettings) -> str:
    """The champion the product would deploy at `point`: its rule, on the forecasts of the validation span
    before it whose labels were known then."""
    span = pd.Timedelta(days=settings.n_folds * settings.fold_days)
    known = evidence.between(point - span, point).known_by(data.purged(point).X.index)
    return choose_champion(known, settings.significance, settings.horizon).champion


def _labelled_forecasts(data, hours: pd.DatetimeIndex, forecasts: dict[str, np.ndarray]) -> Evidence:
    """The forecasts of the hours that have an UP/DOWN label (used only once the label is known)."""
    labelled = hours.intersection(data.X.index)
    rows = hours.get_indexer(labelled)
    return Evidence(labelled, data.y.loc[labelled].to_numpy(dtype=float), {n: p[rows] for n, p in forecasts.items()})


def metrics_table(resolved: pd.DataFrame, horizon: int = 168) -> pd.DataFrame:
    """n, up-share, AUC, Brier, Brier skill vs climatology with its 95 % interval (block bootstrap over
    days, blocks of the horizon) and ECE per asset x target x model, over the predictions resolved UP or
    DOWN; `champion` is the product's own forecast."""
    labelled = resolved[resolved["status"].isin([UP, DOWN])]
    rows = []
    for (symbol, target), group in labelled.groupby(["symbol", "target_pct"]):
        clim = group[group["model_name"] == "climatology"].set_index("timestamp")["probability"]
        for name in SCORED:
            own = group[group["model_name"] == name].set_index("timestamp").sort_index()
            if own.empty:
                continue
            common = own.index.intersection(clim.index)
            y, p = own.loc[common, "actual_outcome"].to_numpy(dtype=float), own.loc[common, "probability"].to_numpy()
            m = forecast_metrics(y, p, clim.loc[common].to_numpy())
            low, high = skill_interval(y, p, clim.loc[common].to_numpy(dtype=float), common,
                                       block_days=max(1, -(-horizon // 24)))
            hit = resolved[(resolved["symbol"] == symbol) & (resolved["target_pct"] == target)
                           & (resolved["model_name"] == name)]
            rows.append({"symbol": symbol, "target": target, "model": name, "n": m["n"], "up_share": m.get("up_share"),
                         "auc": m.get("auc"), "brier": m.get("brier"), "brier_skill": m.get("brier_skill"),
                         "skill_low": low, "skill_high": high,
                         "ece": m.get("ece"), "hit_rate": float(hit["status"].ne("expired").mean())})
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> str:
    lines = [f"{'asset':<10} {'target':>6} {'model':<12} {'n':>6} {'up%':>6} {'AUC':>6} {'Brier':>7} "
             f"{'BSS [95% CI]':>26} {'ECE':>6}"]
    for r in table.itertuples():
        auc = f"{r.auc:.3f}" if r.auc is not None and not pd.isna(r.auc) else "  -  "
        skill = ("n/a" if r.brier_skill is None or pd.isna(r.brier_skill)
                 else f"{r.brier_skill:+.4f} [{r.skill_low:+.4f}, {r.skill_high:+.4f}]")
        lines.append(f"{r.symbol:<10} {r.target:>6.0%} {r.model:<12} {r.n:>6} {r.up_share:>6.1%} {auc:>6} "
                     f"{r.brier:>7.4f} {skill:>26} {r.ece:>6.3f}")
    return "\n".join(lines)
