"""`replay`: the daemon itself, unchanged, over past candles on a simulated clock (src.utils.clock).

Its schedule and jobs (start-up, hourly cycle, repair, daily retrain and report, health rows), its HTTP server
and, when telegram.replay_chat_id is set, its Telegram reports, alerts and commands run as they would live;
only the clock is simulated. Candles come through the daemon's own fetcher from a replayed exchange
(src.data.replayed_exchange), each one once it has opened at the simulated time, so the database holds at every
moment what a live daemon's would. Once the jobs are idle the clock jumps to the next scheduled time; nothing
sleeps. Forecasts are stored as run 'replay', beside any backtest of the same database.

It never touches the product's own database: a throwaway embedded one (kept with `--keep DIR`), or an empty
database given with `--database URL`. One line per simulated day: forecasts, the day's jobs, the process's
resources and the pages' answer times (the soak figures, README "Replay")."""
from __future__ import annotations

import copy
import logging
import shutil
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil
from sqlalchemy import text

from src.data.replayed_exchange import ReplayedExchange, read_source
from src.database.embedded import stop_embedded
from src.monitoring.health import JobState
from src.scheduler.daemon import Daemon
from src.scheduler.services import Context
from src.scheduler.timetable import Timetable
from src.utils.clock import SimulatedClock, use_clock, utc_now
from src.utils.config import Config
from src.utils.errors import UserError
from src.utils.logging_setup import DATE_FORMAT, SecretFilter

log = logging.getLogger(__name__)
DEFAULT_SOURCE = Path(__file__).resolve().parents[1] / "data" / "sample"
HEADER = (f"{'day':<10} {'forecasts':>9} {'hourly med/max s':>16} {'daily s':>8} {'rss MB':>7} {'db MB':>6} "
          f"{'models MB':>9} {'fds':>4} {'thr':>4} {'conns':>5} {'warn':>4} {'err':>4} {'/health':>11} "
          f"{'/record ms':>10}")


@dataclass
class DayFigures:
    """What one simulated day cost: the soak table's row."""
    day: pd.Timestamp
    forecasts: int = 0
    hourly_s: list[float] = field(default_factory=list)
    daily_s: float | None = None
    warnings: int = 0
    errors: int = 0
    rss_mb: float = 0.0
    db_mb: float = 0.0
    models_mb: float = 0.0
    fds: int = 0
    threads: int = 0
    connections: int = 0
    health_status: int = 0
    health_ms: float = 0.0
    record_ms: float = 0.0

    def line(self) -> str:
        hourly = (f"{statistics.median(self.hourly_s):.2f}/{max(self.hourly_s):.2f}" if self.hourly_s else "-")
        daily = "-" if self.daily_s is None else f"{self.daily_s:.1f}"
        return (f"{self.day:%Y-%m-%d} {self.forecasts:>9} {hourly:>16} {daily:>8} {self.rss_mb:>7.0f} "
                f"{self.db_mb:>6.0f} {self.models_mb:>9.1f} {self.fds:>4} {self.threads:>4} {self.connections:>5} "
                f"{self.warnings:>4} {self.errors:>4} {f'{self.health_status} {self.health_ms:.0f}ms':>11} "
                f"{self.record_ms:>10.0f}")


class _LevelCounter(logging.Handler):
    """Counts the log lines of WARNING and above (the day's summary)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts["error" if record.levelno >= logging.ERROR else "warning"] += 1


class ReplayPace:
    """Drives the daemon's timetable on the simulated clock: wait until the jobs are idle, jump to the next due
    time, run what is due; at each new simulated day, print the finished day's figures."""

    def __init__(self, daemon: Daemon, clock: SimulatedClock, end: pd.Timestamp, data_dir: Path):
        self.daemon, self.clock, self.end, self.data_dir = daemon, clock, end, data_dir
        self.days: list[DayFigures] = []
        self.today = DayFigures(clock.now().floor("D"))
        self.levels = _LevelCounter()
        self.finished = False  # reached the end (not stopped)
        self.job_seconds: Counter = Counter()  # where the time went, per job
        self.job_runs: Counter = Counter()
        self.daily_parts: Counter = Counter()  # the daily job's seconds per part
        daemon.board.listeners.append(self._job_done)

    def _job_done(self, job: str, state: JobState) -> None:
        self.job_seconds[job] += state.last_duration_s or 0.0
        self.job_runs[job] += 1
        if job == "hourly" and state.last_result == "ok":
            self.today.hourly_s.append(state.last_duration_s)
            self.today.forecasts += int(state.last_counts.get("predictions", 0))
        elif job == "daily":
            self.today.daily_s = state.last_duration_s
            for key, seconds in state.last_counts.items():  # its parts (Daemon.daily: record_s, retrain_s, ...)
                if key.endswith("_s"):
                    self.daily_parts[key[:-2]] += seconds

    def __call__(self, timetable: Timetable) -> None:
        logging.getLogger().addHandler(self.levels)
        print(HEADER, flush=True)
        try:
            while self.daemon.wait_idle():
                due = timetable.next_run()
                if due is None or due >= self.end:
                    break
                if due.floor("D") > self.today.day:
                    self._close_day(due.floor("D"))
                self.clock.advance_to(due)
                timetable.run_pending()
            if not self.daemon.stop_event.is_set():
                self.clock.advance_to(self.end)
                self._close_day(self.end.floor("D"))
                self.finished = True
        finally:
            logging.getLogger().removeHandler(self.levels)

    def where_time_went(self, total: float) -> str:
        """One line: the seconds in each job (runs; the daily job's parts), and the rest (the clock's steps, the day's
        measurements)."""
        parts = "".join(f", {part} {seconds:.0f}" for part, seconds in self.daily_parts.items())
        jobs = ", ".join(f"{job} {seconds:.0f} s ({self.job_runs[job]}{parts if job == 'daily' else ''})"
                         for job, seconds in self.job_seconds.most_common())
        return f"time in jobs: {jobs}; the rest {total - sum(self.job_seconds.values()):.0f} s"

    def _close_day(self, next_day: pd.Timestamp) -> None:
        figures = self.today
        figures.warnings, figures.errors = self.levels.counts["warning"], self.levels.counts["error"]
        self.levels.counts.clear()
        self._measure(figures)
        self.days.append(figures)
        print(figures.line(), flush=True)
        self.today = DayFigures(next_day)

    def _measure(self, figures: DayFigures) -> None:
        process = psutil.Process()
        figures.rss_mb = process.memory_info().rss / 2**20
        figures.fds, figures.threads = process.num_fds(), process.num_threads()
        models = self.data_dir / "models"
        figures.models_mb = sum(f.stat().st_size for f in models.rglob("*") if f.is_file()) / 2**20 \
            if models.exists() else 0.0
        with self.daemon.ctx.ops.db.engine.connect() as conn:
            figures.db_mb = conn.execute(text("SELECT pg_database_size(current_database())")).scalar() / 2**20
            figures.connections = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")).scalar()
        base = f"http://127.0.0.1:{self.daemon.server.port}"
        figures.health_status, figures.health_ms = _timed_get(base + "/health")
        figures.record_ms = _timed_get(base + "/record?run=replay")[1]


def _timed_get(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (our own loopback server)
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def replay_config(config: Config, data_dir: Path, exchange_url: str, database_url: str | None,
                  port: int) -> Config:
    """The replay's own copy of the config: its database and folder, the replayed exchange, the replay's chat."""
    own = copy.copy(config)
    own.config = copy.deepcopy(config.config)
    tree = own.config
    tree["database"]["url"] = database_url or "embedded"
    tree["paths"]["data_dir"] = str(data_dir)
    tree["exchange"].update(id="binance", options={"fetchMarkets": {"types": ["spot"]}},
                            api_urls={"public": exchange_url}, rate_limit=False)  # its own, on this machine
    tree["health"]["port"] = port
    tg = tree["telegram"]
    chat = str(tg.get("replay_chat_id") or "")
    tg.update(chat_id=chat, allowed_chat_ids=[chat] if chat else [], bot_token=tg["bot_token"] if chat else "")
    return own


def _check_empty(ctx: Context) -> None:
    """A database given with --database must hold nothing of the service's own (a replay writes its run there)."""
    with ctx.ops.db.engine.connect() as conn:
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        if "ohlcv_data" in tables and conn.execute(text("SELECT EXISTS (SELECT 1 FROM ohlcv_data)")).scalar():
            raise UserError("replay --database: that database already holds candles; give an empty database "
                            "(CREATE DATABASE replay_1), so the replay's candles are exactly what the daemon fetched")


class _SimulatedTime(logging.Filter):
    """Stamps each record with the simulated time (the replay log's first column)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.simulated = f"{utc_now():%Y-%m-%dT%H:%MZ}"
        return True


@contextmanager
def replay_logging(path: Path) -> Iterator[None]:
    """The daemon's log lines go to `path`, stamped with the simulated time and the host's; the console keeps its
    warnings and errors, and the replay's one line per day. The product's own log file is left out of it."""
    root = logging.getLogger()
    saved = [(h, h.level) for h in root.handlers]
    for handler, _ in saved:
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
        else:
            handler.setLevel(max(handler.level, logging.WARNING))
    path.parent.mkdir(parents=True, exist_ok=True)
    own = logging.FileHandler(path, encoding="utf-8")
    formatter = logging.Formatter("%(simulated)s (host %(asctime)s) %(levelname)-7s %(name)s: %(message)s",
                                  DATE_FORMAT)
    formatter.converter = time.gmtime
    own.setFormatter(formatter)
    own.addFilter(_SimulatedTime())
    own.addFilter(SecretFilter())
    root.addHandler(own)
    try:
        yield
    finally:
        root.removeHandler(own)
        own.close()
        for handler, level in saved:
            handler.setLevel(level)
            if handler not in root.handlers:
                root.addHandler(handler)


def run_replay(config: Config, start: pd.Timestamp, end: pd.Timestamp, source: str | None = None,
               keep: Path | None = None, database_url: str | None = None, port: int = 0) -> int:
    """Replay the daemon over [start, end); returns the exit code (0: replayed to the end, 128 + the signal: stopped,
    as any command)."""
    if end <= start:
        raise UserError(f"replay: --end {end:%Y-%m-%d %H:%M} must be after --start {start:%Y-%m-%d %H:%M}")
    source = str(source or DEFAULT_SOURCE)
    candles = read_source(source, config.assets, config.timeframe)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    folder = keep or Path(tempfile.mkdtemp(prefix="crypto-ml-replay-"))
    clock = SimulatedClock(start)
    log_file = config.logs_dir / f"replay-{start:%Y%m%d%H}-{end:%Y%m%d%H}.log"
    with ReplayedExchange(candles) as exchange, use_clock(clock), replay_logging(log_file):
        ctx = Context(replay_config(config, folder, exchange.api_url, database_url, port))
        try:
            if database_url:
                _check_empty(ctx)
            daemon = Daemon(ctx)
            pace = ReplayPace(daemon, clock, end, folder)
            where = ("the given database" if database_url else
                     f"a database kept in {folder}" if keep else f"a throwaway database in {folder}")
            print(f"replay {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC of {', '.join(config.assets)}: "
                  f"candles from {source}, {where}; the daemon's log in {log_file}", flush=True)
            started = time.perf_counter()
            daemon.run(pace)
            stopped = None if pace.finished else (daemon.stopped_by or 2)
            print(f"replay {'stopped at' if stopped else 'done through'} {clock.now():%Y-%m-%d %H:%M} UTC in "
                  f"{time.perf_counter() - started:.0f} s ({len(pace.days)} days)"
                  + (f"; kept in {folder}: python -m src.main web --data-dir {folder}" if keep else ""), flush=True)
            print(pace.where_time_went(time.perf_counter() - started), flush=True)
        finally:
            if ctx._ops is not None:  # noqa: SLF001 (only if this run got as far as opening it)
                ctx.ops.db.dispose()
            if not database_url:
                stop_embedded(folder)
            if keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    return 128 + stopped if stopped else 0
