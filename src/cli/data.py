"""Commands about candles and the database: init-db, status, backfill, gaps, recover, import-csv."""
from __future__ import annotations

import argparse
import logging
from datetime import datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from src.scheduler.services import Context
from src.utils.errors import UserError

log = logging.getLogger("src.main")
SYMBOL_MAX_LENGTH = 20  # the width of the symbol columns


def cmd_init_db(args: argparse.Namespace, ctx: Context) -> int:
    ops = ctx.migrated_ops()
    conversion = ops.db.convert_to_hypertables()
    kind = "TimescaleDB" if ops.db.has_timescaledb() else "plain PostgreSQL"
    print(f"schema at revision {ops.db.schema_revision()} on {kind} ({ops.db.safe_url})")
    if conversion == "converted":
        print("TimescaleDB is now available: ohlcv_data and feature_cache were converted to hypertables "
              "(rows kept), older candles will be compressed")
    elif conversion == "not preloaded":
        from src.database.migrations.timescale import NOT_PRELOADED
        print(NOT_PRELOADED)
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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
