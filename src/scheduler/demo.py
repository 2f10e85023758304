"""`demo`: the whole product offline on the real candles shipped in src/data/sample, in a throwaway embedded
database (the user's own database is never touched): import, train, a short walk-forward backtest, a
prediction, outcomes, performance, the hourly and daily reports as a dry run (chart saved), and health."""
from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from src.data.history import load_candles, unfillable_hours
from src.data.importer import import_csv
from src.database.embedded import stop_embedded
from src.models.live.outcomes import resolve_outcomes
from src.models.live.performance import daily_performance
from src.models.live.prediction import Predictor
from src.models.offline.backtest import format_resolution_table, format_table, run_backtest
from src.models.offline.training import Trainer
from src.monitoring.health import health_snapshot
from src.notifications.reports import daily_chart
from src.scheduler.services import Context
from src.utils.config import Config

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
TRAIN_CUT = pd.Timestamp("2023-12-01", tz="UTC")
BACKTEST = (pd.Timestamp("2023-11-17", tz="UTC"), pd.Timestamp("2023-12-01", tz="UTC"))
PREDICT_AT = pd.Timestamp("2023-12-20 06:05", tz="UTC")
OUTCOMES_AT = pd.Timestamp("2023-12-31 23:00", tz="UTC")


def _step(title: str) -> float:
    print(f"\n== {title}")
    return time.perf_counter()


def run_demo(config: Config, output_dir: Path) -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crypto-ml-demo-") as tmp:
        demo_config = copy.copy(config)
        demo_config.config = copy.deepcopy(config.config)
        demo_config.config["database"]["url"] = "embedded"
        demo_config.config["paths"]["data_dir"] = tmp
        demo_config.config["telegram"]["bot_token"] = ""
        ctx = Context(demo_config)
        try:
            healthy = _steps(ctx, demo_config, tmp, output_dir)
        finally:  # every exit (done, an error, Ctrl-C, SIGTERM): the throwaway server stops before its folder goes
            if ctx._ops is not None:  # noqa: SLF001 (only if this run got as far as opening it)
                ctx.ops.db.dispose()
            stop_embedded(Path(tmp))
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; your own database was not touched")
    return 0 if healthy else 1


def _steps(ctx: Context, demo_config: Config, tmp: str, output_dir: Path) -> bool:
    """The demo's steps, printed as they go; returns whether the final health check passed."""
    ops, records = ctx.migrated_ops(), ctx.records
    assets, targets = demo_config.assets, demo_config.target_percentages

    _step(f"import the sample candles into a throwaway database ({tmp})")
    for symbol in assets:
        rows, written = import_csv(ops, SAMPLE / f"{symbol.replace('/', '_')}-1h.csv.gz", symbol)
        print(f"{symbol}: {written} candles")

    with ctx.executor() as executor:  # the fits run on ml.executor, as in train and backtest
        t = _step(f"train the three models per asset x target on labels known by {TRAIN_CUT:%Y-%m-%d}")
        settings = ctx.train_settings()
        settings.n_folds = 2
        for r in Trainer(ops, records, ctx.registry(), settings, executor).train(assets, targets, cut=TRAIN_CUT):
            skill = r.metrics.get("xgboost", {}).get("brier_skill")
            print(f"{r.symbol} {r.target:.0%}: champion {r.champion} (xgboost walk-forward Brier skill "
                  f"{'n/a' if skill is None else f'{skill:+.4f}'})")
        print(f"({time.perf_counter() - t:.0f} s)")

        t = _step(f"walk-forward backtest {BACKTEST[0]:%Y-%m-%d} .. {BACKTEST[1]:%Y-%m-%d}, weekly retraining")
        unfillable = {s: unfillable_hours(ops, s, settings.timeframe) for s in assets}
        direction, timing = run_backtest(load_candles(ops, assets, settings.timeframe), assets, targets, *BACKTEST,
                                         records, settings, retrain_every_days=7, executor=executor,
                                         unfillable=unfillable)
        print(format_table(direction))
        print(format_resolution_table(timing))
        print(f"({time.perf_counter() - t:.0f} s)")

    _step(f"predict as of {PREDICT_AT:%Y-%m-%d %H:%M} UTC")
    predictor = Predictor(ops, records, ctx.registry(), targets, settings.timeframe, settings.horizon)
    result = predictor.predict(assets, PREDICT_AT)
    for (symbol, target), (model, p) in sorted(result.champions.items()):
        timing = result.timings.get((symbol, target))
        soon = f"; P(resolved within 24 h) = {timing[1]:.2f}, median {timing[2]:.0f} h" if timing else ""
        print(f"{symbol} {target:.0%}: P(up first) = {p:.3f} ({model}){soon}")

    _step(f"resolve outcomes as of {OUTCOMES_AT:%Y-%m-%d %H:%M} UTC, then that day's performance")
    print(f"{resolve_outcomes(ops, records, OUTCOMES_AT, settings.horizon)} outcomes written")
    print(f"{daily_performance(records, PREDICT_AT.date(), OUTCOMES_AT, settings.horizon)} performance rows "
          f"for {PREDICT_AT:%Y-%m-%d}")

    _step("hourly and daily reports (dry run: printed, not sent)")
    service = ctx.report_service(dry_run=True)
    service.hourly(PREDICT_AT, demo_config.groups)
    service.daily(PREDICT_AT, output_dir / "demo-live-daily-report.png")
    chart = output_dir / "demo-daily-report.png"  # the live record is one hour old here: chart the backtest's
    chart.write_bytes(daily_chart(records.resolved("backtest", *BACKTEST), records.resolved_time("backtest", *BACKTEST),
                                  source="backtest"))
    print(f"chart of the backtest's two weeks saved to {chart}")

    _step("health")
    report, healthy = health_snapshot(ops, records, assets, targets, settings.timeframe, 10**6,
                                      demo_config.get("app.version"), now=PREDICT_AT)
    summary = {"status": report["status"], "database": report["database"], "problems": report["problems"],
               "champions": {g: m["model"] for g, m in report["models"]["groups"].items()}}
    print(json.dumps(summary, indent=2))
    return healthy
