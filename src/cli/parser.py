"""The command line's parser: every command, its options and their checks."""
from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from datetime import UTC, datetime

from src.cli.data import cmd_backfill, cmd_gaps, cmd_import_csv, cmd_init_db, cmd_recover, cmd_status
from src.cli.live import cmd_maintain, cmd_outcomes, cmd_performance, cmd_predict, cmd_report
from src.cli.models import cmd_backtest, cmd_compare_runs, cmd_retrain, cmd_train
from src.cli.service import cmd_demo, cmd_health, cmd_replay, cmd_run, cmd_web
from src.scheduler.services import Context
from src.utils.config import TIMEFRAME_MS

Handler = Callable[[argparse.Namespace, Context], int]


def positive_int(value: str) -> int:
    """A whole number above 0 (hours, days)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0, e.g. 168")
    return number


def check_options(parser: argparse.ArgumentParser, argv: list[str]) -> None:
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


def parse_move_size(value: str) -> float:
    from src.models.estimators.any_size import parse_move
    from src.utils.choices import BadInput
    try:
        return parse_move(value)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    config_help = "YAML file over config.yaml (or CRYPTO_ML_CONFIG)"
    data_dir_help = "the embedded database and models kept in DIR (e.g. by replay --keep DIR)"
    # --config is accepted before and after the command; SUPPRESS keeps the subcommand's absent
    # option from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=data_dir_help)
    parser = argparse.ArgumentParser(prog="python -m src.main",
                                     description="Hourly calibrated probabilities of crypto moves.")
    parser.add_argument("--config", metavar="PATH", help=config_help)
    parser.add_argument("--data-dir", metavar="DIR", help=data_dir_help)
    sub = parser.add_subparsers(dest="command", metavar="command")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("run", cmd_run, "the daemon: schedule loop and health server until SIGTERM/SIGINT (the default)")
    web = add("web", cmd_web, "serve the track record pages (/, /record, /forecasts, /models) from the database "
                              "alone, without the daemon; read-only")
    web.add_argument("--host", help="address to listen on (default health.host, 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (default health.port; 0: a free one)")
    web.add_argument("--daemon-url", metavar="URL", help="serve the pages of the daemon at URL (it starts this "
                     "itself): / shows its /health verdict, and this ends when the daemon does")
    replay = add("replay", cmd_replay, "run the daemon itself over past candles on a simulated clock (run 'replay'), "
                                       "in a throwaway database; one line per simulated day")
    replay.add_argument("--start", type=parse_time, required=True, help="first simulated time, e.g. 2023-10-01")
    replay.add_argument("--end", type=parse_time, required=True, help="last simulated time (exclusive)")
    replay.add_argument("--source", metavar="DIR|URL",
                        help="candles: a folder of SYMBOL_QUOTE-1h.csv.gz files or a postgresql:// URL "
                             "(default: the demo's sample in src/data/sample)")
    replay.add_argument("--keep", metavar="DIR", help="keep the replay's database and models in DIR")
    replay.add_argument("--database", metavar="URL", help="an empty PostgreSQL database to replay into instead")
    replay.add_argument("--port", type=int, default=0, help="its HTTP server's port (default: a free one)")
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
                          help="days between retrains at scheduler.daily_time (7; 1 is the daemon's daily retrain)")
    backtest.add_argument("--symbol", action="append", help="asset (repeatable; default: all)")
    compare = add("compare-runs", cmd_compare_runs, "list every difference between two runs' stored forecasts "
                                                    "(e.g. replay and backtest of the same days), grouped by cause")
    compare.add_argument("first", choices=("live", "replay", "backtest"), help="a run, e.g. replay")
    compare.add_argument("second", choices=("live", "replay", "backtest"), help="another, e.g. backtest")
    compare.add_argument("--start", type=parse_time, help="first hour (default: every stored hour)")
    compare.add_argument("--end", type=parse_time, help="end (exclusive)")
    predict = add("predict", cmd_predict, "one prediction cycle (as of now or of --at)")
    predict.add_argument("--at", type=parse_time, help="as of this time (UTC), e.g. 2023-06-01T12:00")
    predict.add_argument("--move", type=parse_move_size, metavar="PCT",
                         help="only answer how soon a move of this size (0.5%% to 10%%, e.g. 3.5%%) comes, per asset, "
                              "from the newest candle; nothing is written")
    outcomes = add("outcomes", cmd_outcomes, "resolve pending predictions (as of now or of --at)")
    outcomes.add_argument("--at", type=parse_time, help="as of this time (UTC)")
    performance = add("performance", cmd_performance, "daily metrics per asset x target x model")
    performance.add_argument("--date", type=parse_time, help="the day (default: yesterday, UTC)")
    retrain = add("retrain", cmd_retrain, "champion/challenger retraining (as of now or of --at)")
    retrain.add_argument("--at", type=parse_time, help="as of this time (UTC): the candles closed by then")
    report = add("report", cmd_report, "build and send (or print) a report")
    report.add_argument("--at", type=parse_time, help="as of this time (UTC; default now)")
    report.add_argument("--type", choices=("hourly", "daily"), default="hourly")
    report.add_argument("--dry-run", action="store_true", help="print instead of sending")
    maintain = add("maintain", cmd_maintain, "remove rows and files past their age (the retention: settings), as "
                   "the daily job does; says what it removed")
    maintain.add_argument("--at", type=parse_time, help="as of this time (UTC; default now)")
    return parser
