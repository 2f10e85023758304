"""The daemon: start-up (migrations, history, first training), then the schedule loop (hourly cycle, daily
cycle, health rows) with the health server beside it, until SIGTERM or SIGINT.

Jobs run one at a time on a worker thread, so they never overlap; the main thread keeps the schedule and
answers signals. A stop lets the running job reach its next safe point (every write is one transaction,
so an interrupted step leaves no partial batch) and exits within 15 s.
"""
from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable

import pandas as pd
from cachetools.func import ttl_cache

from src.data.fetcher import FetchError
from src.database.records.scores import settled_through
from src.models.live.outcomes import resolve_outcomes
from src.models.live.performance import refresh_performance
from src.models.live.prediction import Predictor
from src.models.offline.retraining import Retrainer
from src.models.offline.training import Trainer
from src.monitoring.app import SNAPSHOT_CACHE_SECONDS, HealthServer, PageProxy, create_app
from src.monitoring.health import (
    HealthReads,
    JobBoard,
    health_reads,
    health_snapshot,
    live_skills,
    record_system_health,
)
from src.scheduler.pages import PageProcess
from src.scheduler.services import Context
from src.scheduler.timetable import Timetable
from src.utils.candles import last_closed_before
from src.utils.clock import service_run, utc_now
from src.utils.config import group_key
from src.utils.errors import StopRequested, UserError, check_stop, problem_category
from src.utils.memory import release_free_memory
from src.utils.progress import LogProgress

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 12
OPEN_WINDOW_SLACK_HOURS = 24  # the hourly outcome check reads entries of the last horizon + this many hours
READS_MAX_AGE_S = 5.0  # /health's database reads are shared this long at most (wall clock), unless a job wrote


class _Laps:
    """The seconds each part of a job took, for its log line (name_s=...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[f"{part}_s"] = round(now - self._last, 1)
        self._last = now


def _may_have_written(job: str, counts: dict) -> bool:
    """Whether a job's run may have changed what /health reads: every run but the health row's own and a candle
    repair that found nothing behind."""
    return job != "health" and not (job == "repair" and counts.get("behind") == 0)


class Daemon:
    def __init__(self, ctx: Context):
        self.ctx, self.config = ctx, ctx.config
        self.board = JobBoard()
        self.history_incomplete = False  # set when the exchange was unreachable during the start-up fetch
        self.stop_event = ctx.stop_event
        self.jobs: queue.Queue = queue.Queue()
        self.queued: set[str] = set()
        self.queue_lock = threading.Lock()
        self.server: HealthServer | None = None
        self.pages: PageProcess | None = None  # the pages' own process (health.page_process)
        self.bot = None  # the Telegram command listener, when a token is set and telegram.commands is on
        self.running: str | None = None  # the job the worker thread is running
        self.last_full_resolve: pd.Timestamp | None = None  # when every pending entry was last checked
        self.stopped_by: int | None = None  # the signal that stopped it
        self.runs_that_wrote = 0  # job runs that may have changed what /health reads
        self.up_to_date_through: pd.Timestamp | None = None  # the newest closed hour every asset's candle had
        self._reads: tuple[tuple, float, HealthReads] | None = None  # /health's database reads, their key and age
        self._reads_lock = threading.Lock()

    # ---- plumbing ----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        check_stop(self.stop_event, "the job")

    def submit(self, name: str, func: Callable[[], dict]) -> None:
        """Queue a job unless the same job is already waiting (a slow job never piles up runs). Called from the
        schedule loop and from jobs (repair queues the hourly cycle): the check and the add are one step."""
        with self.queue_lock:
            if name not in self.queued:
                self.queued.add(name)
                self.jobs.put((name, func))

    def _worker(self) -> None:
        while not self.stop_event.is_set():
            try:
                name, func = self.jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            with self.queue_lock:
                self.queued.discard(name)
            try:
                self.run_job(name, func)
            finally:
                self.jobs.task_done()

    def wait_idle(self) -> bool:
        """Wait until every queued job has run (the replay moves its clock only then); False on a stop."""
        with self.jobs.all_tasks_done:
            while self.jobs.unfinished_tasks and not self.stop_event.is_set():
                self.jobs.all_tasks_done.wait(0.5)
        return not self.stop_event.is_set()

    def run_job(self, name: str, func: Callable[[], dict]) -> None:
        """Run one job; one log line with its counts and duration; a failure is recorded, never raised. A stop
        is not a failure: the job ends at its next safe point and says so."""
        started, started_at = time.time(), utc_now()
        self.running = name
        try:
            counts, error, category = func() or {}, None, None
        except StopRequested:
            log.info("job %s stopped at a safe point after %.1fs: the service is stopping", name, time.time() - started)
            return
        except UserError as exc:
            counts, error = {}, (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            category = problem_category(exc)
        except Exception as exc:  # a bug or an unforeseen fault: where it happened goes to the log, once
            log.error("job %s: unexpected %s", name, type(exc).__name__, exc_info=True)
            counts, error = {}, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            category = problem_category(exc)
        if _may_have_written(name, counts):
            self.runs_that_wrote += 1
        state = self.board.record(name, started, error, counts, started_at, category if error else None)
        shown = " ".join(f"{k}={v}" for k, v in counts.items())
        self.running = None
        if error:
            log.error("job %s FAILED in %.1fs (%d in a row): %s", name, state.last_duration_s,
                      state.consecutive_failures, error)
        else:
            log.info("job %s ok in %.1fs %s", name, state.last_duration_s, shown)

    # ---- jobs --------------------------------------------------------------------------------
    def startup(self) -> dict:
        ops = self.ctx.migrated_ops()
        days = self.config.history_days
        recovery = self.ctx.recovery()
        written = 0
        self.history_incomplete = False
        for symbol in self.config.assets:
            self.checkpoint()
            before = ops.get_candle_count(symbol, self.config.timeframe)
            try:
                recovery.ensure_minimum_data_coverage(symbol, days * 24,
                                                      progress=LogProgress(f"{symbol} history", days * 24))
            except FetchError as exc:
                self.history_incomplete = exc.unreachable
                if exc.unreachable:  # one line, not the same retries for every asset
                    log.error("%s. The daemon keeps running and tries again every %d min; to see the product "
                              "work offline meanwhile: python -m src.main demo", exc,
                              self.config.get("scheduler.repair_minutes"))
                    break
                log.error("%s: history not complete (%s); will retry at the next cycle", symbol, exc)
            except UserError as exc:
                log.error("%s: history not complete (%s); will retry at the next cycle", symbol, exc)
            written += ops.get_candle_count(symbol, self.config.timeframe) - before
        self.checkpoint()
        trained, skipped = self._train_missing()
        # the web's track record: every settled day at the first start, the newest ones after
        self.ctx.records.refresh_day_scores(service_run(), settled_through(utc_now(), self.config.horizon),
                                            self.config.horizon)
        return {"candles_written": written, "groups_trained": trained, "groups_skipped": skipped}

    def _train_missing(self) -> tuple[int, int]:
        """Train each group that has no champion, one at a time; a group that cannot be trained is recorded
        with its reason (group_status) and the others go on. Returns (trained, skipped)."""
        champions = self.ctx.records.models(champions_only=True)
        have = {(s, round(t, 6)) for s, t in zip(champions["symbol"], champions["target_pct"])}
        missing = [(s, t) for s, t in self.config.groups if (s, round(t, 6)) not in have]
        empty = {s for s in {s for s, _ in missing} if self.ctx.ops.get_candle_count(s, self.config.timeframe) == 0}
        if empty:  # one line for them all, and the reason kept for /health and the hourly report
            log.warning("not training %s yet: no candles stored (they come once the exchange answers, or with "
                        "import-csv)", ", ".join(sorted(empty)))
            self.ctx.records.record_group_problems(
                "train", self.config.timeframe, {(s, t): "no candles stored yet" for s, t in missing if s in empty}, [])
        trained = 0
        with self.ctx.executor() as executor:
            trainer = Trainer(self.ctx.ops, self.ctx.records, self.ctx.registry(), self.ctx.train_settings(), executor,
                              self.stop_event)
            for symbol, target in missing:
                if symbol in empty:
                    continue
                self.checkpoint()
                trained += not trainer.train([symbol], [target])[0].skipped
        return trained, len(missing) - trained

    def _predictor(self) -> Predictor:
        return Predictor(self.ctx.ops, self.ctx.records, self.ctx.registry(), self.config.target_percentages,
                         self.config.timeframe, self.config.horizon)

    def hourly(self) -> dict:
        now = utc_now()
        self.ctx.migrated_ops()
        records = self.ctx.records
        try:
            self.ctx.recovery().check_and_recover_all_symbols(self.config.assets,
                                                              self.config.get("scheduler.catch_up_hours") + 24)
        except UserError as exc:
            log.warning("candle recovery failed (%s); predicting from stored candles", exc)
        self.checkpoint()
        predictor = self._predictor()
        missed = self._missed_hours(now)
        for hour in missed:  # hours the service was away: the data and the models of their own time
            self.checkpoint()
            predictor.predict(self.config.assets, hour + pd.Timedelta(hours=1, minutes=1), registry_as_of_at=True)
        result = predictor.predict(self.config.assets, now)
        self.board.stale = dict(result.stale)
        if result.fallbacks:  # champions that cannot be loaded: retrain those groups next, within the hour
            groups = sorted(result.fallbacks)
            self.submit("heal", lambda: self.heal(groups))
        self.checkpoint()
        outcomes = self._resolve_outcomes(now)
        self.checkpoint()
        service = self.ctx.report_service()
        reasons = {group_key(s, t): why for (s, t), why in records.group_problems(self.config.timeframe).items()}
        service.hourly(now, self.config.groups, reasons)
        alerts = service.alerts()
        return {"predictions": result.written, "caught_up_hours": len(missed), "stale": len(result.stale),
                "groups_skipped": len(result.skipped), "outcomes": outcomes, "alerts": len(alerts)}

    def _resolve_outcomes(self, now: pd.Timestamp) -> int:
        """Hourly, the open windows only (a bounded read on day 700 as on day 1); at start and once a day, every
        pending entry (one kept open by a missing candle, or older than the windows after an outage)."""
        full = self.last_full_resolve is None or now - self.last_full_resolve >= pd.Timedelta(days=1)
        since = None if full else now.floor("h") - pd.Timedelta(hours=self.config.horizon + OPEN_WINDOW_SLACK_HOURS)
        written = resolve_outcomes(self.ctx.migrated_ops(), self.ctx.records, now, self.config.horizon, since=since)
        if full:
            self.last_full_resolve = now
        return written

    def heal(self, groups: list[tuple[str, float]]) -> dict:
        """Retrain the groups whose champion could not be loaded (an earlier champion served meanwhile)."""
        healed = 0
        with self.ctx.executor() as executor:
            trainer = Trainer(self.ctx.ops, self.ctx.records, self.ctx.registry(), self.ctx.train_settings(), executor,
                              self.stop_event)
            for symbol, target in groups:
                self.checkpoint()
                healed += not trainer.train([symbol], [target])[0].skipped
        return {"groups_retrained": healed, "groups_failed": len(groups) - healed}

    def repair(self, now: pd.Timestamp | None = None) -> dict:
        """While an asset's candles are behind the last closed hour, try to fetch them (every few minutes,
        not only hourly); when that brings an asset up to date, run the hourly cycle for it at once. Before
        this hour's cycle has had its turn, the cycle itself fetches the new candle."""
        now = now if now is not None else utc_now()
        if (now.minute <= self.config.get("scheduler.hourly_minute")
                or self.up_to_date_through == last_closed_before(now)):
            return {"behind": 0}  # before the hourly cycle's turn, or every asset already had this hour's candle
        behind = self._assets_behind(now)
        if not behind:
            return {"behind": 0}
        try:
            self.ctx.recovery().check_and_recover_all_symbols(behind, self.config.get("scheduler.catch_up_hours") + 24)
        except UserError as exc:
            log.warning("candle repair failed (%s); trying again in %d min", exc,
                        self.config.get("scheduler.repair_minutes"))
        still = self._assets_behind(now)
        if len(still) < len(behind):
            if self.history_incomplete:  # the exchange answers again: fetch the history and train first
                self.submit("startup", self.startup)
            self.submit("hourly", self.hourly)
        return {"behind": len(behind), "repaired": len(behind) - len(still)}

    def _assets_behind(self, now: pd.Timestamp) -> list[str]:
        newest_closed = last_closed_before(now)
        ops, tf = self.ctx.migrated_ops(), self.config.timeframe
        newest = ops.get_last_complete_timestamps(self.config.assets, tf)
        behind = [s for s in self.config.assets if s not in newest or pd.Timestamp(newest[s]) < newest_closed]
        if not behind:  # stored candles stay: until the next hour closes, no need to ask again
            self.up_to_date_through = newest_closed
        return behind

    def _missed_hours(self, now: pd.Timestamp) -> list[pd.Timestamp]:
        """The hours since the newest one forecast whole (in both tables), within scheduler.catch_up_hours."""
        last = self.ctx.records.newest_whole_hour()
        if last is None:
            return []
        current = now.floor("h") - pd.Timedelta(hours=1)
        window = pd.Timedelta(hours=self.config.get("scheduler.catch_up_hours"))
        start = max(last + pd.Timedelta(hours=1), current - window)
        return list(pd.date_range(start, current - pd.Timedelta(hours=1), freq="h"))

    def daily(self, now: pd.Timestamp | None = None) -> dict:
        """Performance and day sums, the retrain, the daily report, the retention; its log line says how long each
        part took (record_s, retrain_s, report_s, upkeep_s)."""
        now = now if now is not None else utc_now()
        records, laps = self.ctx.records, _Laps()
        days = refresh_performance(records, now, self.config.horizon)
        # the web's record
        scored = records.refresh_day_scores(service_run(), settled_through(now, self.config.horizon),
                                            self.config.horizon)
        scored += self._restore_missing_sums(now)
        laps.mark("record")
        self.ctx.registry().remove_orphans()  # folders of fits a crash cut short since the last start
        self.checkpoint()
        with self.ctx.executor() as executor:
            retrainer = Retrainer(self.ctx.ops, records, self.ctx.registry(), self.ctx.train_settings(), executor,
                                  self.stop_event)
            decisions = retrainer.retrain(self.config.assets, self.config.target_percentages, now,
                                          progress=LogProgress("retrain", unit="groups"))
        self.checkpoint()
        trained, skipped = self._train_missing()
        laps.mark("retrain")
        self.checkpoint()
        day = now - pd.Timedelta(days=1)  # the report is yesterday's (UTC), and so is its chart's name
        self.ctx.report_service().daily(day, self.config.data_dir / "reports" / f"daily-{day:%Y%m%d}.png")
        laps.mark("report")
        removed = self.ctx.maintain(now)  # the retention: nothing grows without end
        release_free_memory()  # the day's retrain and fresh models: keep the daemon's memory flat
        laps.mark("upkeep")
        return {"performance_days": len(days), "day_scores": scored,
                "champions_changed": sum(d.changed for d in decisions), "groups_trained": trained,
                "groups_skipped": skipped, "removed": sum(removed.values()), **laps.seconds}

    def _restore_missing_sums(self, now: pd.Timestamp) -> int:
        """Store the daily sums of every run that has forecasts but none stored (a backtest stopped half-way):
        until then each page view sums that whole run from the forecasts."""
        records, horizon, stored = self.ctx.records, self.config.horizon, 0
        for run in records.runs_without_sums():
            newest = pd.Timestamp(records.newest_forecast_time(run))
            settled = settled_through(min(now, newest + pd.Timedelta(hours=horizon + 1)), horizon)
            stored += records.refresh_day_scores(run, settled, horizon, full=True)
            log.info("daily sums of run %s stored again through %s (they were missing)", run, settled)
        return stored

    def _start_pages(self, app) -> None:
        """The pages in their own process, forwarded once it answers; until then, and whenever it has ended, this
        process serves them itself."""
        server = self.server
        host = server.server.effective_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (where the daemon listens)
        self.pages = PageProcess(self.config, f"http://{host}:{server.port}",
                                 on_ready=lambda port: server.route_pages(PageProxy("127.0.0.1", port)),
                                 on_exit=lambda: server.route_pages(app))
        self.pages.start()

    def health_row(self) -> dict:
        if self.pages is not None and not self.pages.alive() and not self.stop_event.is_set():
            self.pages.start()  # it ended: start it again
        report, _ = self.snapshot()
        ages = [d["age_hours"] for d in report.get("data", {}).values() if d["age_hours"] is not None]
        row = record_system_health(self.ctx.ops, self.config.data_dir, report.get("models", {}).get("champions", 0),
                                   int(max(ages) * 60) if ages else None, database_mb=report["database"].get("size_mb"))
        return {"rss_mb": row["process_rss_mb"], "db_mb": row["database_size_mb"]}

    def snapshot(self) -> tuple[dict, bool]:
        """The health snapshot now. Its database reads are read again once a job may have written, the hour has
        turned, or READS_MAX_AGE_S have passed on the wall clock (a write by another process: a CLI command); a
        replay's health rows, minutes apart on its clock and milliseconds on the wall's, share them."""
        now, assets, targets = utc_now(), self.config.assets, self.config.target_percentages
        key = (self.runs_that_wrote, now.floor("h"))
        with self._reads_lock:
            cached = self._reads
        if cached is not None and cached[0] == key and time.monotonic() - cached[1] < READS_MAX_AGE_S:
            reads = cached[2]
        else:
            read_at = time.monotonic()
            reads = health_reads(self.ctx.ops, self.ctx.records, assets, targets, self.config.timeframe, now)
            with self._reads_lock:
                self._reads = (key, read_at, reads)
        return health_snapshot(self.ctx.ops, self.ctx.records, assets, targets, self.config.timeframe,
                               self.config.get("health.stale_after_hours"), self.config.get("app.version"), self.board,
                               now, reads)

    def live_skills(self) -> dict[tuple[str, str, str], float]:
        return live_skills(self.ctx.records)

    # ---- the loop ----------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopped_by = signum
        self.stop_event.set()

    def run(self, pace: Callable[[Timetable], None] | None = None) -> int:
        """Serve and run the schedule until a stop. `pace` drives the schedule (default: the wall clock; the replay
        gives one that moves a simulated clock to each due time once the jobs are idle)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self.ctx.migrated_ops()  # open (or start) the database and migrate before anything shares it
        self.ctx.registry().remove_orphans()  # the folders of fits killed before their rows were written
        health = self.config.config["health"]
        self.bot = self.ctx.command_bot(self.snapshot)
        # one snapshot for /health and the pages, for a few seconds of the service's clock
        snapshot = ttl_cache(maxsize=1, ttl=SNAPSHOT_CACHE_SECONDS, timer=lambda: utc_now().timestamp())(self.snapshot)
        app = create_app(snapshot, self.live_skills, self.board,
                         rejected=lambda: self.bot.rejected_total if self.bot else 0)
        app.register_blueprint(self.ctx.pages(self.ctx.records, snapshot))  # the track record for people
        self.server = HealthServer(app, health["host"], health["port"], page_workers=health["page_workers"])
        self.server.start()
        if health["page_process"] and service_run() == "live":  # a replay's pages read its simulated clock: here
            self._start_pages(app)
        if self.bot is not None:
            self.bot.start()
        worker = threading.Thread(target=self._worker, name="jobs", daemon=True)
        worker.start()
        sched = self.config.config["scheduler"]
        self.submit("startup", self.startup)
        if sched["run_at_start"]:
            self.submit("hourly", self.hourly)
        timetable = Timetable()  # in UTC: on a host whose zone is not a whole hour off UTC, local :02 would not
        # follow the candle close
        timetable.hourly_at(sched["hourly_minute"], "hourly", lambda: self.submit("hourly", self.hourly))
        timetable.daily_at(sched["daily_time"], "daily", lambda: self.submit("daily", self.daily))
        timetable.every_minutes(sched["health_minutes"], "health", lambda: self.submit("health", self.health_row))
        timetable.every_minutes(sched["repair_minutes"], "repair", lambda: self.submit("repair", self.repair))
        log.info("daemon running: hourly at :%02d, daily at %s UTC, health every %d min, candle repair every %d min "
                 "while behind", sched["hourly_minute"], sched["daily_time"], sched["health_minutes"],
                 sched["repair_minutes"])
        try:
            (pace or self._wall_clock_pace)(timetable)
        finally:
            if self.bot is not None:
                self.bot.request_stop()  # ends its long poll while the job reaches a safe point
            self.stop_event.set()  # a pace that ends (the replay's last hour) stops the worker too
            worker.join(timeout=STOP_GRACE_SECONDS)
            if self.bot is not None:
                self.bot.stop(timeout=2)
            if self.pages is not None:
                self.pages.stop()
            self.server.stop()
            self.ctx.ops.db.dispose()
            if worker.is_alive():
                log.warning("job %s had not reached a safe point %d s after the stop; stopping without it (the "
                            "database rolls back its open transaction; a model folder it was writing is removed at "
                            "the next start)", self.running, STOP_GRACE_SECONDS)
            log.info("daemon stopped")
        return 0

    def _wall_clock_pace(self, timetable: Timetable) -> None:
        while not self.stop_event.is_set():
            timetable.run_pending()
            self.stop_event.wait(1)
