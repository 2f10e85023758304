"""Commands of the live cycle, one step at a time: predict, outcomes, performance, report."""
from __future__ import annotations

import argparse
import logging
from datetime import datetime, timedelta

from src.scheduler.services import Context
from src.utils.errors import UserError

log = logging.getLogger("src.main")


def _now_or(value: datetime | None):
    import pandas as pd

    from src.utils.clock import utc_now
    return pd.Timestamp(value or utc_now())


def _fill_latest(ctx: Context, at) -> None:
    """Before a live cycle: fetch the hours missing up to the last closed candle (recent T only)."""
    import pandas as pd

    from src.utils.clock import utc_now
    if utc_now() - at > pd.Timedelta(hours=48):
        return
    ops, tf = ctx.migrated_ops(), ctx.config.timeframe
    newest = ops.get_last_complete_timestamps(ctx.config.assets, tf)
    if all(s in newest and newest[s] >= at.floor("h") - pd.Timedelta(hours=1) for s in ctx.config.assets):
        return
    try:
        ctx.recovery().check_and_recover_all_symbols(ctx.config.assets, hours_back=48)
    except UserError as exc:
        log.warning("could not fetch the newest candles (%s); predicting from what is stored", exc)


def cmd_predict(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.live.prediction import Predictor
    if args.move is not None:
        return _answer_move(args, ctx)
    at = _now_or(args.at)
    _fill_latest(ctx, at)
    records = ctx.records
    predictor = Predictor(ctx.ops, records, ctx.registry(records), ctx.config.target_percentages,
                          ctx.config.timeframe, ctx.config.horizon)
    result = predictor.predict(ctx.config.assets, at)
    for (symbol, target), (model, p) in sorted(result.champions.items()):
        timing = result.timings.get((symbol, target))
        soon = f"  P(resolved within 24 h) = {timing[1]:.2f}, median {timing[2]:.0f} h ({timing[0]})" if timing else ""
        print(f"{symbol:<10} {target:>5.0%}  P(up first) = {p:.3f}  ({model}){soon}")
    for symbol, why in result.stale.items():
        print(f"{symbol:<10} no prediction: {why}")
    print(f"{result.written} predictions and {result.time_written} how-soon forecasts written in "
          f"{result.seconds * 1000:.0f} ms")
    return 0 if result.predicted or not ctx.config.assets else 1


def _answer_move(args: argparse.Namespace, ctx: Context) -> int:
    """`predict --move`: how soon a move of that size comes, per asset, from the newest stored candle."""
    from src.models.evaluation.time_metrics import hours_text
    if args.at is not None:
        raise UserError("--move answers from the newest stored candle; leave out --at")
    now = _now_or(None)
    _fill_latest(ctx, now)
    answered = 0
    for symbol in ctx.config.assets:
        try:
            answer = ctx.moves().forecast(symbol, args.move, now)
        except UserError as exc:
            print(f"{symbol:<10} {args.move * 100:g} %: {exc}")
            continue
        p6, p24, ph, q10, q50, q90 = answer.forecast
        stale = f"  STALE: {answer.stale}" if answer.stale else ""
        print(f"{symbol:<10} {args.move * 100:g} %  candle {answer.candle_time:%Y-%m-%d %H:%M} UTC ({answer.model}): "
              f"P(either move within 6 h) {p6:.0%}, 24 h {p24:.0%}, {ctx.config.horizon} h {ph:.0%}; hours 10 % "
              f"{hours_text(q10, ctx.config.horizon)}, median {hours_text(q50, ctx.config.horizon)}, 90 % "
              f"{hours_text(q90, ctx.config.horizon)}{stale}")
        answered += 1
    return 0 if answered else 1


def cmd_outcomes(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.live.outcomes import resolve_outcomes
    written = resolve_outcomes(ctx.migrated_ops(), ctx.records, _now_or(args.at),
                               ctx.config.horizon)
    print(f"{written} outcomes written")
    return 0


def cmd_performance(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.live.performance import daily_performance
    from src.utils.clock import utc_now
    day = args.date.date() if args.date else (utc_now() - timedelta(days=1)).date()
    records = ctx.records
    stored = daily_performance(records, day, horizon=ctx.config.horizon)
    from src.utils.clock import service_run
    table = records.performance(service_run(), day)
    print(f"{stored} metric rows for {day}")
    for r in table.sort_values(["symbol", "target_pct", "model_name", "window_days"]).itertuples():
        skill = "n/a" if r.brier_skill is None or r.brier_skill != r.brier_skill else f"{r.brier_skill:+.4f}"
        hit = "n/a" if r.hit_rate is None or r.hit_rate != r.hit_rate else f"{r.hit_rate:.0%}"
        print(f"{r.symbol:<10} {float(r.target_pct):>5.0%} {r.model_name:<12} {r.window_days:>2} d  "
              f"n={r.total_predictions:<5} pending {r.pending_predictions or 0:<5} hit rate "
              f"{hit}  Brier skill {skill}")
    return 0


def cmd_report(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd
    service = ctx.report_service(args.dry_run)
    now = _now_or(args.at)
    if args.type == "hourly":
        result = service.hourly(now, ctx.config.groups)
        service.alerts(now)
    else:
        day = now - pd.Timedelta(days=1)  # the report is yesterday's (UTC), and so is its chart's name
        chart = ctx.config.data_dir / "reports" / f"daily-{day:%Y%m%d}.png"
        result = service.daily(day, chart)
        print(f"chart saved to {chart}")
    if not (result.success or result.dry_run):
        raise UserError(f"report not sent: {result.error} (the text is kept in telegram_reports)")
    return 0


def cmd_maintain(args: argparse.Namespace, ctx: Context) -> int:
    removed = ctx.maintain(_now_or(args.at))
    retention = ctx.config.config["retention"]
    print(f"retention: feature cache {retention['feature_cache_days']} d, health rows {retention['health_days']} d, "
          f"report texts {retention['report_texts_days']} d, {retention['daily_charts']} daily charts, "
          f"{retention['retired_champions']} retired champions per group")
    for kind, count in removed.items():
        print(f"removed {count:>8,} {kind}")
    return 0
