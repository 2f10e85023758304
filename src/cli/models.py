"""Commands that fit models: train, backtest, retrain."""
from __future__ import annotations

import argparse
import sys

from src.scheduler.services import Context
from src.utils.clock import utc_now
from src.utils.errors import UserError
from src.utils.progress import TerminalProgress


def cmd_train(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.offline.training import Trainer
    symbols = args.symbol or ctx.config.assets
    targets = args.target or ctx.config.target_percentages
    records = ctx.records
    ctx.registry(records).remove_orphans()  # the folders of an earlier run killed before its rows were written
    with ctx.executor() as executor, TerminalProgress("train", "model set") as bar:
        _say_executor(executor)
        trainer = Trainer(ctx.ops, records, ctx.registry(records), ctx.train_settings(), executor)
        results = trainer.train(symbols, targets, progress=bar)
    print(f"{'asset':<10} {'target':>6} {'champion':<12} Brier skill vs climatology on the held-out last fold "
          "(champion policy, xgboost, logistic)")
    for r in results:
        if r.skipped:
            print(f"{r.symbol:<10} {r.target:>6.0%} {'SKIPPED':<12} {r.skipped}")
            continue
        skill = [r.metrics.get(n, {}).get("brier_skill") for n in ("champion", "xgboost", "logistic")]
        shown = ", ".join("n/a" if v is None else f"{v:+.4f}" for v in skill)
        print(f"{r.symbol:<10} {r.target:>6.0%} {r.champion:<12} {shown}")
    skipped = [f"{r.symbol} {r.target:g}" for r in results if r.skipped]
    if skipped:
        raise UserError(f"{len(skipped)} of {len(results)} groups not trained ({', '.join(skipped)}); "
                        "see the reasons above")
    return 0


def cmd_backtest(args: argparse.Namespace, ctx: Context) -> int:
    from src.data.history import load_candles, unfillable_hours
    from src.models.offline.backtest import format_resolution_table, format_table, run_backtest
    start, end = args.start, args.end
    if end <= start:
        raise UserError(f"--end {end:%Y-%m-%d} is not after --start {start:%Y-%m-%d}")
    symbols = args.symbol or ctx.config.assets
    settings = ctx.train_settings()
    candles = load_candles(ctx.migrated_ops(), symbols, settings.timeframe)
    missing = [s for s in symbols if s not in candles]
    if missing:
        raise UserError(f"no candles stored for {', '.join(missing)}; run backfill or import-csv first")
    failures: dict = {}
    sched = ctx.config.config["scheduler"]
    with ctx.executor() as executor, TerminalProgress("backtest", "retrain point") as bar:
        _say_executor(executor)
        unfillable = {s: unfillable_hours(ctx.ops, s, settings.timeframe) for s in symbols}
        direction, timing = run_backtest(candles, symbols, ctx.config.target_percentages, start, end, ctx.records,
                                         settings, args.retrain_every, progress=bar, unfillable=unfillable,
                                         executor=executor, failures=failures, daily_time=sched["daily_time"],
                                         hourly_minute=sched["hourly_minute"])
    print("Direction: P(up X% before down X%)")
    print(format_table(direction))
    print("\nHow soon: hours until either barrier is touched")
    print(format_resolution_table(timing))
    if failures:
        raise UserError(f"{len(failures)} groups not backtested (" +
                        "; ".join(f"{s} {t:g}: {why}" for (s, t), why in failures.items()) + "); the others are stored")
    return 0


def cmd_compare_runs(args: argparse.Namespace, ctx: Context) -> int:
    """Exit 0 when the two runs stored the same forecasts, 1 when any differ."""
    import pandas as pd

    from src.models.evaluation.runs import compare_runs
    if args.first == args.second:
        raise UserError(f"compare-runs: give two different runs, e.g. replay backtest (not {args.first} twice)")
    start = pd.Timestamp(args.start) if args.start else None
    end = pd.Timestamp(args.end) if args.end else None
    comparison = compare_runs(ctx.read_records(), args.first, args.second, start, end)
    print(comparison.report())
    return 1 if comparison.total else 0


def _say_executor(executor) -> None:
    """Where the fits run, and the Dask dashboard to watch them on."""
    shown = f"; dashboard {executor.dashboard}" if executor.dashboard else ""
    print(f"fits run on: {executor.name}{shown}", file=sys.stderr)


def cmd_retrain(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from src.models.offline.retraining import Retrainer
    records = ctx.records
    ctx.registry(records).remove_orphans()
    with ctx.executor() as executor, TerminalProgress("retrain", "model set") as bar:
        _say_executor(executor)
        retrainer = Retrainer(ctx.ops, records, ctx.registry(records), ctx.train_settings(), executor)
        at = pd.Timestamp(args.at) if args.at else utc_now()
        decisions = retrainer.retrain(ctx.config.assets, ctx.config.target_percentages, at, progress=bar)
    for d in decisions:
        change = f"{d.previous} -> {d.champion}" if d.changed else f"{d.champion} (fresh fit)" if d.version else "kept"
        print(f"{d.symbol:<10} {d.target:>5.0%} {change}: {d.reason}")
    failed = [f"{d.symbol} {d.target:g}" for d in decisions if d.version is None]
    if failed:
        raise UserError(f"{len(failed)} of {len(decisions)} groups not retrained ({', '.join(failed)}); "
                        "their champions stay; see the reasons above")
    return 0
