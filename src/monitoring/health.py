"""System health: the record of job runs, the health snapshot behind /health and `health`, and the
psutil figures stored in system_health."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd
import psutil
from sqlalchemy import insert, text

from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.database.schema import system_health
from src.models.evaluation.scoring import CHAMPION
from src.utils.clock import service_run, utc_now
from src.utils.config import group_key
from src.utils.errors import PUBLIC_CATEGORIES
from src.utils.secrets import redact

FAILURES_UNHEALTHY = 3  # a job failing this many times in a row makes the service unhealthy
FORECAST_STALE_HOURS = 2  # a group whose newest forecast's candle closed longer ago has no current forecast
RECENT_CANDLE_HOURS = 168  # /health counts the candles of the last week (a full count grows with the history)


@dataclass
class JobState:
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_started: str | None = None
    last_finished: str | None = None
    last_result: str | None = None  # ok | failed
    last_error: str | None = None
    last_category: str | None = None  # the failure in fixed public words (errors.problem_category)
    last_duration_s: float | None = None
    last_counts: dict = field(default_factory=dict)


class JobBoard:
    """Thread-safe record of every job's runs, shared by the scheduler and the health server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, JobState] = {}
        self.stale: dict[str, str] = {}  # symbol -> why the last cycle skipped it
        self.listeners: list[Callable[[str, JobState], None]] = []  # told of every run (the replay's day summary)

    def record(self, job: str, started: float, error: str | None, counts: dict | None = None,
               started_at: pd.Timestamp | None = None, category: str | None = None) -> JobState:
        """One run: `started` on time.time() (its duration), `started_at` on the service's clock (shown)."""
        with self._lock:
            state = self.jobs.setdefault(job, JobState())
            state.runs += 1
            state.last_started = (started_at if started_at is not None
                                  else pd.Timestamp(datetime.fromtimestamp(started, UTC))).isoformat(timespec="seconds")
            state.last_finished = utc_now().isoformat(timespec="seconds")
            state.last_duration_s = round(time.time() - started, 3)
            state.last_result = "failed" if error else "ok"
            state.last_error = redact(error) if error else None  # /health shows it: no secret in an answer
            state.last_category = (category or "internal error") if error else None
            state.last_counts = counts or {}
            state.failures += bool(error)
            state.consecutive_failures = state.consecutive_failures + 1 if error else 0
        for listener in self.listeners:
            listener(job, state)
        return state

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {name: asdict(state) for name, state in self.jobs.items()}


def database_status(ops: DatabaseOperations) -> dict:
    """Whether the database answers, how fast, and its size on disk (MB)."""
    started = time.perf_counter()
    try:
        with ops.db.engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
        return {"reachable": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "size_mb": round(size / 2**20, 1)}
    except Exception as exc:
        return {"reachable": False, "error": type(exc).__name__}


@dataclass
class HealthReads:
    """What /health reads from the database, once: the report is built from these and the clock (the ages), so a
    snapshot taken again before anything was written can reuse them (Daemon.snapshot)."""
    database: dict
    hour: pd.Timestamp | None = None  # the hour the week's candle count ends at
    problems: dict = field(default_factory=dict)  # (symbol, target) -> why the group was skipped
    fallbacks: dict = field(default_factory=dict)  # (symbol, target) -> why an earlier champion serves
    recent: dict = field(default_factory=dict)  # symbol -> (candles of the last week, newest)
    newest_candles: dict = field(default_factory=dict)  # symbol -> newest stored candle's open time
    champions: list = field(default_factory=list)  # the champion registry rows
    newest_forecasts: dict = field(default_factory=dict)  # (symbol, target) -> the newest champion forecast's hour


def health_reads(ops: DatabaseOperations, records: RecordStore, assets: list[str], targets: list[float],
                 timeframe: str, now: pd.Timestamp) -> HealthReads:
    """Every database read behind the health snapshot (only the database's status when it cannot be reached)."""
    reads = HealthReads(database_status(ops))
    if not reads.database["reachable"]:
        return reads
    reads.hour = now.floor("h")
    reads.problems = records.group_problems(timeframe)
    reads.fallbacks = records.group_problems(timeframe, "model")
    reads.recent = ops.recent_candles(assets, timeframe, reads.hour - pd.Timedelta(hours=RECENT_CANDLE_HOURS))
    older = [symbol for symbol in assets if symbol not in reads.recent]  # no candle this week: look further back
    reads.newest_candles = {s: newest for s, (_, newest) in reads.recent.items()} | (
        ops.get_last_complete_timestamps(older, timeframe) if older else {})
    reads.champions = records.champion_rows()
    reads.newest_forecasts = records.newest_champion_times([(s, t) for s in assets for t in targets])
    return reads


def health_snapshot(ops: DatabaseOperations, records: RecordStore, assets: list[str], targets: list[float],
                    timeframe: str, stale_after_hours: float, version: str, board: JobBoard | None = None,
                    now: pd.Timestamp | None = None, reads: HealthReads | None = None) -> tuple[dict, bool]:
    """The /health JSON and whether the service is healthy: database up, no stale asset, every configured
    group with a champion and a current forecast, the last hourly cycle not failed, no job failing
    repeatedly. `problems` says which. `reads`: the database's answers, when already read (health_reads)."""
    now = now if now is not None else utc_now()
    reads = reads if reads is not None else health_reads(ops, records, assets, targets, timeframe, now)
    report: dict = {"version": version, "time": now.isoformat(timespec="seconds"), "database": reads.database}
    problems = [] if reads.database["reachable"] else ["database unreachable"]
    public = list(problems)  # the same problems in fixed words, for public pages: no host, address or path
    skipped: dict[str, str] = {}
    if reads.database["reachable"]:
        skipped = {group_key(s, t): why for (s, t), why in reads.problems.items() if s in assets}
        report["data"] = _freshness(reads, assets, now, stale_after_hours)
        report["models"] = _models(reads.champions, now)
        report["forecasts"] = _forecasts(reads.newest_forecasts, assets, targets, now)
        stale = [s for s, d in report["data"].items() if d["stale"]]
        problems += [f"{s} data stale" for s in stale]
        public += [f"{s}: candles late" for s in stale]
        unmodelled = [group for group in report["forecasts"] if group not in report["models"]["groups"]]
        problems += [f"{group}: no champion model ({skipped.get(group, 'not trained')})" for group in unmodelled]
        public += [f"{group}: no model yet" for group in unmodelled]
        unforecast = [(group, f["problem"]) for group, f in report["forecasts"].items()
                      if f["problem"] and group in report["models"]["groups"]]
        problems += [f"{group}: {why}" for group, why in unforecast]
        public += [f"{group}: no current forecast" for group, _ in unforecast]
        fallbacks = {group_key(s, t): why for (s, t), why in reads.fallbacks.items()
                     if s in assets}  # a champion that cannot be loaded: an earlier one serves until retrained
        problems += [f"{group}: {why}" for group, why in fallbacks.items()]
        public += [f"{group}: {PUBLIC_CATEGORIES['model']} (an earlier one serves)" for group in fallbacks]
    jobs = board.snapshot() if board else {}
    report["jobs"] = jobs
    report["skipped_assets"] = dict(board.stale) if board else {}
    report["skipped_groups"] = skipped
    if jobs.get("hourly", {}).get("last_result") == "failed":
        problems.append(f"last hourly cycle failed: {jobs['hourly']['last_error']}")
        public.append(f"last hourly cycle failed: {jobs['hourly']['last_category']}")
    failing = [(name, j["consecutive_failures"]) for name, j in jobs.items()
               if j["consecutive_failures"] >= FAILURES_UNHEALTHY]
    problems += [f"job {name} failed {n} times" for name, n in failing]
    public += [f"job {name} failed {n} times" for name, n in failing]
    report["public_problems"] = public
    report["problems"] = problems
    report["status"] = "ok" if not problems else "unhealthy"
    return report, not problems


def _forecasts(newest: dict, assets: list[str], targets: list[float], now: pd.Timestamp) -> dict:
    """Per configured group: its newest champion forecast, how old its candle is, and what is wrong."""
    out = {}
    for symbol, target in [(symbol, target) for symbol in assets for target in targets]:
        hour = newest.get((symbol, target))
        age = None if hour is None else (now - hour).total_seconds() / 3600 - 1  # since the candle closed
        problem = "no forecast yet" if hour is None else (
            f"newest forecast is from the candle of {hour:%Y-%m-%d %H:%M} UTC, {age:.1f} h old"
            if age > FORECAST_STALE_HOURS else None)
        out[group_key(symbol, target)] = {"newest_forecast": None if hour is None else hour.isoformat(),
                                          "age_hours": None if age is None else round(age, 2),
                                          "problem": problem}
    return out


def _freshness(reads: HealthReads, assets: list[str], now: pd.Timestamp, stale_after_hours: float) -> dict:
    """Per asset: the newest candle and how old it is, and how many of the last week's candles are stored (a
    bounded count: 168 when none is missing, on day 700 as on day 1)."""
    out = {}
    for symbol in assets:
        newest = reads.newest_candles.get(symbol)
        newest = None if newest is None else pd.Timestamp(newest)
        age = None if newest is None else (now - newest).total_seconds() / 3600 - 1  # complete 1 h after open
        out[symbol] = {"candles_last_7_days": reads.recent.get(symbol, (0, None))[0],
                       "newest_candle": None if newest is None else newest.isoformat(),
                       "age_hours": None if age is None else round(age, 2),
                       "stale": age is None or age > stale_after_hours}
    return out


def _models(champions: list, now: pd.Timestamp) -> dict:
    timing = {group_key(r["symbol"], r["target_pct"]): r["model_name"] for r in champions if r["task"] == "resolution"}
    direction = [r for r in champions if r["task"] == "direction"]
    return {"champions": len(direction), "groups": {
        group_key(r["symbol"], r["target_pct"]): {
            "model": r["model_name"], "version": r["version"], "time_model": timing.get(group_key(r["symbol"],
                                                                                                  r["target_pct"])),
            "age_days": round((now - pd.Timestamp(r["train_end"])).total_seconds() / 86400, 1)}
        for r in direction}}


def record_system_health(ops: DatabaseOperations, data_dir, active_models: int, freshness_minutes: int | None,
                         latency_ms: int | None = None, database_mb: float | None = None) -> dict:
    """Store one system_health row (CPU since the previous row, memory, disk, process RSS, database size: read now
    unless given) and return it."""
    if database_mb is None:
        database_mb = database_status(ops).get("size_mb")
    row = {"cpu_percent": psutil.cpu_percent(interval=None), "memory_percent": psutil.virtual_memory().percent,
           "disk_percent": psutil.disk_usage(str(data_dir)).percent,
           "process_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
           "database_size_mb": database_mb, "prediction_latency_ms": latency_ms,
           "data_freshness_minutes": freshness_minutes, "active_models": active_models}
    with ops.db.engine.begin() as conn:
        conn.execute(insert(system_health).values(timestamp=utc_now(), **row))  # the service's clock: a replay's
    return row


LIVE_WINDOW_DAYS = 30
LIVE_SKILL_MAX_AGE_DAYS = 7  # the daily job computes them; a week without it shows as no figure, not an old one
RESOLUTION_GAUGES = {"brier_skill_6h": "6h", "brier_skill_24h": "24h", "brier_skill_horizon": "horizon"}


def live_skills(records: RecordStore, now: pd.Timestamp | None = None) -> dict[tuple[str, str, str], float]:
    """The newest 30-day live figures of what each group's users got (the 'champion' series, whichever models
    served), computed within the last LIVE_SKILL_MAX_AGE_DAYS (older figures are not current): (symbol, target,
    metric) -> value, metric 'direction' (Brier skill), '6h' / '24h' / 'horizon' (how-soon Brier skill),
    'coverage' or 'claimed' (the share the intervals claimed). One bounded read."""
    now = now if now is not None else utc_now()
    since = (now - pd.Timedelta(days=LIVE_SKILL_MAX_AGE_DAYS)).date()
    out: dict[tuple[str, str, str], float] = {}
    for r in records.newest_performance(service_run(), CHAMPION, LIVE_WINDOW_DAYS, since).itertuples():
        target = f"{float(r.target_pct):g}"
        figures = ({"direction": r.brier_skill} if r.task == "direction" else
                   {**{label: getattr(r, column) for column, label in RESOLUTION_GAUGES.items()},
                    "coverage": r.interval_coverage, "claimed": r.interval_claimed})
        out |= {(r.symbol, target, name): float(v) for name, v in figures.items() if v is not None and v == v}
    return out
