"""Command line: python -m src.main [command] [--config PATH]. See --help."""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from sqlalchemy.exc import OperationalError
from tqdm import tqdm

from src.scheduler.services import Context
from src.utils.config import TIMEFRAME_MS, Config
from src.utils.errors import UserError
from src.utils.logging_setup import SecretFilter, setup_logging
from src.utils.progress import TerminalProgress
from src.utils.secrets import redact

log = logging.getLogger("src.main")
SYMBOL_MAX_LENGTH = 20  # the width of the symbol columns
Handler = Callable[[argparse.Namespace, Context], int]


# ---- commands ---------------------------------------------------------------------------------------
def cmd_init_db(args: argparse.Namespace, ctx: Context) -> int:
    ops = ctx.migrated_ops()
    conversion = ops.db.convert_to_hypertables()
    kind = "TimescaleDB" if ops.db.has_timescaledb() else "plain PostgreSQL"
    print(f"schema at revision {ops.db.schema_revision()} on {kind} ({ops.db.safe_url})")
    if conversion == "converted":
        print("TimescaleDB is now available: ohlcv_data and feature_cache were converted to hypertables "
              "(rows kept), older candles will be compressed")
    elif conversion == "unavailable":
        print("TimescaleDB is not installed in this server; to use it (faster history, compression): "
              "bash ../shared/timescaledb/build.sh .venv/bin/python (embedded server) or a TimescaleDB "
              "image, then run init-db again to convert")
    return 0


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    db = ctx.ops.db
    print(f"database:    {db.safe_url}")
    revision = db.schema_revision()
    print(f"schema:      {revision or 'not created (run: python -m src.main init-db)'}")
    print(f"timescaledb: {'yes' if db.has_timescaledb() else 'no'}")
    if not revision:
        return 0
    summary = {(row["symbol"], row["timeframe"]): row for row in ctx.ops.candle_summary()}
    unfillable = ctx.ops.get_exchange_gaps(timeframe=ctx.config.timeframe)
    print(f"candles ({ctx.config.timeframe}):")
    for symbol in ctx.config.assets:
        row = summary.get((symbol, ctx.config.timeframe))
        known = int((unfillable["symbol"] == symbol).sum()) if len(unfillable) else 0
        if row:
            print(f"  {symbol:<10} {row['candles']:>7} from {row['first']:%Y-%m-%d %H:%M} "
                  f"to {row['last']:%Y-%m-%d %H:%M} UTC, {known} gaps the exchange cannot fill")
        else:
            print(f"  {symbol:<10} {0:>7} (run: python -m src.main backfill)")
    return 0


def cmd_backfill(args: argparse.Namespace, ctx: Context) -> int:
    recovery = ctx.recovery()
    days = args.days or ctx.config.history_days
    failed = []
    for symbol in args.symbol or ctx.config.assets:
        with tqdm(total=days * 24, desc=symbol, unit="h", disable=None) as bar:
            try:
                complete = recovery.ensure_minimum_data_coverage(symbol, days * 24, progress=bar.update)
            except UserError as exc:
                log.error("%s: backfill failed: %s", symbol, exc)
                failed.append(symbol)
                continue
        count = ctx.ops.get_candle_count(symbol, ctx.config.timeframe)
        print(f"{symbol}: {count} candles stored{'' if complete else ' (some hours still missing)'}")
    if failed:
        raise UserError(f"backfill failed for {', '.join(failed)}; see the log lines above")
    return 0


def cmd_gaps(args: argparse.Namespace, ctx: Context) -> int:
    from src.data.recovery import partition_gaps
    ops, tf = ctx.migrated_ops(), ctx.config.timeframe
    starts = {row["symbol"]: row["first"] for row in ops.candle_summary() if row["timeframe"] == tf}
    for symbol in ctx.config.assets:
        if symbol not in starts:
            print(f"{symbol}: no candles stored yet; run: python -m src.main backfill (or import-csv)")
            continue
        gaps = _after(ops.check_data_gaps(symbol, tf, args.hours), starts[symbol])
        ordinary, unfillable = partition_gaps(gaps, ops.get_exchange_gaps(symbol, tf))
        print(f"{symbol}: {_plural(len(ordinary), 'gap')} to repair, {len(unfillable)} the exchange never "
              f"published (last {args.hours} h; history starts {starts[symbol]:%Y-%m-%d %H:%M} UTC, older hours "
              "come with backfill)")
        for label, runs in (("missing", ordinary), ("exchange", unfillable)):
            for first, last in runs:
                hours = int((last - first) / timedelta(hours=1)) + 1
                print(f"  {label:<8} {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC ({hours} h)")
    return 0


def _after(gaps: list[tuple[datetime, datetime]], first: datetime) -> list[tuple[datetime, datetime]]:
    """The gap runs from the first stored candle on: hours before it are history not fetched yet."""
    return [(max(a, first), b) for a, b in gaps if b >= first]


def cmd_recover(args: argparse.Namespace, ctx: Context) -> int:
    results = ctx.recovery().check_and_recover_all_symbols(ctx.config.assets, args.hours)
    for symbol, count in results.items():
        print(f"{symbol}: {'FAILED' if count < 0 else f'{count} candles recovered'}")
    if any(count < 0 for count in results.values()):
        raise UserError("recovery failed for some assets; see the log lines above")
    return 0


def cmd_import_csv(args: argparse.Namespace, ctx: Context) -> int:
    from src.data.importer import import_csv, read_candle_csv
    symbol = args.symbol.strip()
    if symbol.count("/") != 1 or len(symbol) > SYMBOL_MAX_LENGTH or not all(symbol.split("/")):
        raise UserError(f"--symbol {args.symbol!r}: use the exchange's BASE/QUOTE form, at most "
                        f"{SYMBOL_MAX_LENGTH} characters, e.g. BTC/USDT")
    if symbol not in ctx.config.assets:
        raise UserError(f"--symbol {symbol} is not in trading.assets ({', '.join(ctx.config.assets)}); add it to "
                        "your config first, or the candles would be stored for an asset nothing uses")
    frame = read_candle_csv(Path(args.file), args.timeframe)  # refuse a bad file before touching the database
    rows, written = import_csv(ctx.migrated_ops(), Path(args.file), symbol, args.timeframe, frame, args.replace)
    print(f"{symbol}: {rows} rows read, {written} candles written")
    return 0


def cmd_train(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.training import Trainer
    symbols = args.symbol or ctx.config.assets
    targets = args.target or ctx.config.target_percentages
    records = ctx.records
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
    from src.models.backtest import RUN, format_resolution_table, format_table, resolution_table, run_backtest
    from src.models.training import load_candles, unfillable_hours
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
    with ctx.executor() as executor, TerminalProgress("backtest", "fit") as bar:
        _say_executor(executor)
        table = run_backtest(candles, symbols, ctx.config.target_percentages, start, end, ctx.records, settings,
                             args.retrain_every, progress=bar,
                             unfillable={s: unfillable_hours(ctx.ops, s, settings.timeframe) for s in symbols},
                             executor=executor, failures=failures)
    print("Direction: P(up X% before down X%)")
    print(format_table(table))
    print("\nHow soon: hours until either barrier is touched")
    print(format_resolution_table(resolution_table(ctx.records.resolved_time(RUN, start, end), settings.horizon)))
    if failures:
        raise UserError(f"{len(failures)} groups not backtested (" +
                        "; ".join(f"{s} {t:g}: {why}" for (s, t), why in failures.items()) + "); the others are stored")
    return 0


def _say_executor(executor) -> None:
    """Where the fits run, and the Dask dashboard to watch them on."""
    shown = f"; dashboard {executor.dashboard}" if executor.dashboard else ""
    print(f"fits run on: {executor.name}{shown}", file=sys.stderr)


def _now_or(value: datetime | None):
    import pandas as pd
    return pd.Timestamp(value or datetime.now(UTC))


def _fill_latest(ctx: Context, at) -> None:
    """Before a live cycle: fetch the hours missing up to the last closed candle (recent T only)."""
    import pandas as pd
    if pd.Timestamp.now(tz="UTC") - at > pd.Timedelta(hours=48):
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
    from src.models.prediction import Predictor
    at = _now_or(args.at)
    _fill_latest(ctx, at)
    records = ctx.records
    predictor = Predictor(ctx.ops, records, ctx.registry(records), ctx.config.target_percentages,
                          ctx.config.timeframe, ctx.config.get("ml.max_lookback_hours"))
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


def cmd_outcomes(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.outcomes import resolve_outcomes
    written = resolve_outcomes(ctx.migrated_ops(), ctx.records, _now_or(args.at),
                               ctx.config.get("ml.max_lookback_hours"))
    print(f"{written} outcomes written")
    return 0


def cmd_performance(args: argparse.Namespace, ctx: Context) -> int:
    from src.models.performance import daily_performance
    day = args.date.date() if args.date else (datetime.now(UTC) - timedelta(days=1)).date()
    records = ctx.records
    stored = daily_performance(records, day, horizon=ctx.config.get("ml.max_lookback_hours"))
    table = records.performance("live", day)
    print(f"{stored} metric rows for {day}")
    for r in table.sort_values(["symbol", "target_pct", "model_name", "window_days"]).itertuples():
        skill = "n/a" if r.brier_skill is None or r.brier_skill != r.brier_skill else f"{r.brier_skill:+.4f}"
        hit = "n/a" if r.hit_rate is None or r.hit_rate != r.hit_rate else f"{r.hit_rate:.0%}"
        print(f"{r.symbol:<10} {float(r.target_pct):>5.0%} {r.model_name:<12} {r.window_days:>2} d  "
              f"n={r.total_predictions:<5} pending {r.pending_predictions or 0:<5} hit rate "
              f"{hit}  Brier skill {skill}")
    return 0


def cmd_retrain(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from src.models.retraining import Retrainer
    records = ctx.records
    with ctx.executor() as executor, TerminalProgress("retrain", "model set") as bar:
        _say_executor(executor)
        retrainer = Retrainer(ctx.ops, records, ctx.registry(records), ctx.train_settings(), executor)
        decisions = retrainer.retrain(ctx.config.assets, ctx.config.target_percentages, pd.Timestamp.now(tz="UTC"),
                                      progress=bar)
    for d in decisions:
        change = f"{d.previous} -> {d.champion}" if d.changed else f"{d.champion} (fresh fit)" if d.version else "kept"
        print(f"{d.symbol:<10} {d.target:>5.0%} {change}: {d.reason}")
    failed = [f"{d.symbol} {d.target:g}" for d in decisions if d.version is None]
    if failed:
        raise UserError(f"{len(failed)} of {len(decisions)} groups not retrained ({', '.join(failed)}); "
                        "their champions stay; see the reasons above")
    return 0


def cmd_report(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd
    service = ctx.report_service(args.dry_run)
    now = pd.Timestamp.now(tz="UTC")
    if args.type == "hourly":
        result = service.hourly(now, ctx.config.groups)
        service.alerts()
    else:
        day = now - pd.Timedelta(days=1)  # the report is yesterday's (UTC), and so is its chart's name
        chart = ctx.config.data_dir / "reports" / f"daily-{day:%Y%m%d}.png"
        result = service.daily(day, chart)
        print(f"chart saved to {chart}")
    if not (result.success or result.dry_run):
        raise UserError(f"report not sent: {result.error} (the text is kept in telegram_reports)")
    return 0


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from src.scheduler.daemon import Daemon
    return Daemon(ctx).run()


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    """The daemon's /health when it runs; else the same checks made here (without job history)."""
    import json
    import urllib.error
    import urllib.request
    health = ctx.config.config["health"]
    url = f"http://{health['host']}:{health['port']}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            report, healthy = json.loads(answer.read()), True
    except urllib.error.HTTPError as err:
        report, healthy = json.loads(err.read()), False
    except OSError:
        from src.monitoring.health import health_snapshot
        report, healthy = health_snapshot(ctx.ops, ctx.records, ctx.config.assets, ctx.config.target_percentages,
                                          ctx.config.timeframe, health["stale_after_hours"],
                                          ctx.config.get("app.version"))
        report["source"] = "cli (daemon not reachable at " + url + ")"
    print(json.dumps(report, indent=2, default=str))
    return 0 if healthy else 3


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    from src.scheduler.demo import run_demo
    return run_demo(ctx.config, ctx.config.data_dir / "demo")


# ---- parser -----------------------------------------------------------------------------------------
def positive_int(value: str) -> int:
    """A whole number above 0 (hours, days)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0, e.g. 168")
    return number


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _check_options(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A misspelt option gets its own message (argparse would take its value for the command)."""
    known = {"-h", "--help"}
    for action in parser._actions:  # noqa: SLF001 (argparse keeps no public list)
        known.update(action.option_strings)
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict):
                known.update(o for a in action.choices[sub]._actions for o in a.option_strings)  # noqa: SLF001
    for token in argv:
        name = token.split("=", 1)[0]
        if name.startswith("-") and name not in known and not name.lstrip("-").replace(".", "").isdigit():
            near = difflib.get_close_matches(name, sorted(known), n=1)
            parser.error(f"unknown option {name}" + (f"; did you mean {near[0]}?" if near else ""))


def parse_time(value: str) -> datetime:
    """ISO date or time, taken as UTC when it has no zone."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date/time; use e.g. 2023-06-01 or "
                                         "2023-06-01T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    config_help = "YAML file over config.yaml (or CRYPTO_ML_CONFIG)"
    # --config is accepted before and after the command; SUPPRESS keeps the subcommand's absent
    # option from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(prog="python -m src.main",
                                     description="Hourly calibrated probabilities of crypto moves.")
    parser.add_argument("--config", metavar="PATH", help=config_help)
    sub = parser.add_subparsers(dest="command", metavar="command")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("run", cmd_run, "the daemon: schedule loop and health server until SIGTERM/SIGINT (the default)")
    add("health", cmd_health, "print the health JSON; exit 3 when unhealthy")
    add("demo", cmd_demo, "offline end to end on shipped sample candles, in a throwaway database")
    add("init-db", cmd_init_db, "apply database migrations (safe to run again)")
    add("status", cmd_status, "database, schema revision, TimescaleDB, candles per asset")
    backfill = add("backfill", cmd_backfill, "fetch missing history from the exchange")
    backfill.add_argument("--symbol", action="append", help="asset (repeatable; default: all)")
    backfill.add_argument("--days", type=positive_int,
                          help="days of history (default: the longer of ml.training_days and trading.lookback_days)")
    gaps = add("gaps", cmd_gaps, "list missing candles per asset")
    gaps.add_argument("--hours", type=positive_int, default=168, help="window to scan (default 168)")
    recover = add("recover", cmd_recover, "find and fill missing candles")
    recover.add_argument("--hours", type=positive_int, default=168, help="window to scan (default 168)")
    imp = add("import-csv", cmd_import_csv, "load candles from a CSV (timestamp,open,high,low,close,volume)")
    imp.add_argument("file", help="CSV file, plain or .gz; timestamp in ms UTC")
    imp.add_argument("--symbol", required=True, help="asset, e.g. BTC/USDT")
    imp.add_argument("--timeframe", default="1h", choices=list(TIMEFRAME_MS), help="candle timeframe (default 1h)")
    imp.add_argument("--replace", action="store_true",
                     help="overwrite stored candles whose values differ from the file's (refused otherwise)")
    train = add("train", cmd_train, "train and validate models (purged walk-forward), store metrics")
    train.add_argument("--symbol", action="append", help="asset (repeatable; default: all)")
    train.add_argument("--target", action="append", type=float, help="target move, e.g. 0.02 (repeatable)")
    backtest = add("backtest", cmd_backtest, "walk-forward backtest over history")
    backtest.add_argument("--start", type=parse_time, required=True, help="first hour, e.g. 2022-07-01")
    backtest.add_argument("--end", type=parse_time, required=True, help="end (exclusive), e.g. 2024-01-01")
    backtest.add_argument("--retrain-every", type=positive_int, default=7, metavar="DAYS",
                          help="days between retrains (7)")
    backtest.add_argument("--symbol", action="append", help="asset (repeatable; default: all)")
    predict = add("predict", cmd_predict, "one prediction cycle (as of now or of --at)")
    predict.add_argument("--at", type=parse_time, help="as of this time (UTC), e.g. 2023-06-01T12:00")
    outcomes = add("outcomes", cmd_outcomes, "resolve pending predictions (as of now or of --at)")
    outcomes.add_argument("--at", type=parse_time, help="as of this time (UTC)")
    performance = add("performance", cmd_performance, "daily metrics per asset x target x model")
    performance.add_argument("--date", type=parse_time, help="the day (default: yesterday, UTC)")
    add("retrain", cmd_retrain, "champion/challenger retraining")
    report = add("report", cmd_report, "build and send (or print) a report")
    report.add_argument("--type", choices=("hourly", "daily"), default="hourly")
    report.add_argument("--dry-run", action="store_true", help="print instead of sending")
    return parser


class Stopped(BaseException):
    """A stop signal (SIGTERM, SIGHUP) to a CLI command: unwinds to main like Ctrl-C, so every open
    transaction rolls back and the embedded server this process started is stopped at exit."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame) -> None:
    raise Stopped(signum)


def _resend_swallowed_stop(unraisable) -> None:
    """A stop (SIGTERM, SIGHUP, Ctrl-C) whose exception landed in a garbage-collector callback is swallowed by
    Python ("Exception ignored"): send the signal again, so it lands in ordinary code and stops the command.
    Sent from another thread a moment later: sent from here, its handler would raise inside this hook, where
    the exception is swallowed again."""
    exc = unraisable.exc_value
    if isinstance(exc, Stopped | KeyboardInterrupt):
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
    else:
        sys.__unraisablehook__(unraisable)


def _print_error(message: str) -> None:
    for line in redact(message).splitlines():
        print(f"error: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _check_options(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # the daemon installs its own graceful handlers
        signal.signal(signum, _raise_stopped)
    sys.unraisablehook = _resend_swallowed_stop
    try:
        config = Config(args.config)
        SecretFilter.register(str(config.get("telegram.bot_token", "")))
        setup_logging(config.get("app.log_level"), config.logs_dir)
        handler = cmd_run if args.command is None else args.handler
        return handler(args, Context(config))
    except UserError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Stopped as stop:
        print(f"stopped by {stop}", file=sys.stderr)
        return 128 + stop.signum
    except (OperationalError, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:  # the database went away
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _print_error(f"the database stopped answering ({reason}); nothing half-written was kept - start it "
                     "and run the command again")
        return 1
    except Exception as exc:  # an unforeseen fault: the traceback in the log once, one line for the user
        log.error("unexpected failure", exc_info=True)
        _print_error(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                     "(the traceback is in the log)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
