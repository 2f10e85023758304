"""The health server: a Flask app (/health JSON, HTTP 503 when unhealthy; /metrics Prometheus text),
served by waitress (a production WSGI server) on a background thread of the daemon."""
from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable
from urllib.parse import quote

import psutil
from cachetools.func import ttl_cache
from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from waitress.server import create_server

from src.monitoring.health import JobBoard
from src.utils.clock import utc_now
from src.utils.errors import UserError

log = logging.getLogger(__name__)
Snapshot = Callable[[], tuple[dict, bool]]
SNAPSHOT_CACHE_SECONDS = 5.0


# The scheduled job's label: not `job`, which Prometheus itself sets on every scraped series.
JOB_LABEL = "scheduled_job"


class JobRunsCollector:
    """crypto_ml_job_runs_total as a real counter: the job board's run counts since start, per result."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}

    def collect(self):
        family = CounterMetricFamily("crypto_ml_job_runs", "scheduled job runs since the service started",
                                     labels=[JOB_LABEL, "result"])
        for job, state in self.jobs.items():
            family.add_metric([job, "ok"], state["runs"] - state["failures"])
            family.add_metric([job, "failed"], state["failures"])
        yield family


class RejectedCollector:
    """crypto_ml_telegram_rejected_total: commands from chats or users not allowed, since the service started."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self):
        family = CounterMetricFamily("crypto_ml_telegram_rejected", "Telegram commands ignored: from a chat or user "
                                     "not allowed")
        family.add_metric([], self.count())
        yield family


class Metrics:
    """Prometheus metrics, refreshed from the health snapshot and the job board at each scrape."""

    def __init__(self, rejected: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(RejectedCollector(rejected or (lambda: 0)))
        self.up = Gauge("crypto_ml_healthy", "1 when /health is healthy", registry=r)
        self.db_up = Gauge("crypto_ml_database_up", "1 when the database answers", registry=r)
        self.candle_age = Gauge("crypto_ml_newest_candle_age_hours", "hours since the newest candle closed",
                                ["symbol"], registry=r)
        self.candles = Gauge("crypto_ml_candles_last_7_days", "candles stored for the last 168 hours (168 when none "
                             "is missing)", ["symbol"], registry=r)
        self.job_runs = JobRunsCollector()
        r.register(self.job_runs)
        self.job_duration = Gauge("crypto_ml_job_last_duration_seconds", "duration of the last run", [JOB_LABEL],
                                  registry=r)
        self.job_failing = Gauge("crypto_ml_job_consecutive_failures", "failures in a row", [JOB_LABEL], registry=r)
        self.predictions = Gauge("crypto_ml_predictions_last_cycle", "predictions written by the last cycle",
                                 registry=r)
        self.brier_skill = Gauge("crypto_ml_live_brier_skill", "30-day live Brier skill vs climatology (champion)",
                                 ["symbol", "target"], registry=r)
        self.resolution_skill = Gauge("crypto_ml_live_resolution_skill",
                                      "30-day live Brier skill of P(resolved within 6 h / 24 h / H) vs the climatology "
                                      "time model (champion)", ["symbol", "target", "horizon"], registry=r)
        self.coverage = Gauge("crypto_ml_live_interval_coverage",
                              "30-day live share of outcomes inside the resolution-time interval (champion)",
                              ["symbol", "target"], registry=r)
        self.claimed = Gauge("crypto_ml_live_interval_claimed",
                             "30-day share of outcomes those intervals claimed to hold: 0.8 closed, 0.9 open (q90 past "
                             "the window); coverage is right when it equals this", ["symbol", "target"], registry=r)
        self.champions = Gauge("crypto_ml_champion_models", "asset x target groups with a champion", registry=r)
        self.without_forecast = Gauge("crypto_ml_groups_without_forecast",
                                      "configured asset x target groups with no current forecast", registry=r)
        self.rss = Gauge("crypto_ml_process_rss_bytes", "resident memory of the service", registry=r)

    def refresh(self, report: dict, healthy: bool, skills: dict[tuple[str, str, str], float]) -> bytes:
        self.up.set(int(healthy))
        self.db_up.set(int(report["database"]["reachable"]))
        for symbol, data in report.get("data", {}).items():
            self.candles.labels(symbol).set(data["candles_last_7_days"])
            if data["age_hours"] is not None:
                self.candle_age.labels(symbol).set(data["age_hours"])
        self.job_runs.jobs = report.get("jobs", {})
        for job, state in report.get("jobs", {}).items():
            self.job_duration.labels(job).set(state["last_duration_s"] or 0)
            self.job_failing.labels(job).set(state["consecutive_failures"])
            if job == "hourly":
                self.predictions.set(state["last_counts"].get("predictions", 0))
        for (symbol, target, metric), value in skills.items():
            if metric == "direction":
                self.brier_skill.labels(symbol, target).set(value)
            elif metric == "coverage":
                self.coverage.labels(symbol, target).set(value)
            elif metric == "claimed":
                self.claimed.labels(symbol, target).set(value)
            else:
                self.resolution_skill.labels(symbol, target, metric).set(value)
        self.champions.set(report.get("models", {}).get("champions", 0))
        self.without_forecast.set(sum(1 for f in report.get("forecasts", {}).values() if f["problem"]))
        self.rss.set(psutil.Process().memory_info().rss)
        return generate_latest(self.registry)


def create_app(snapshot: Snapshot, skills: Callable[[], dict], board: JobBoard | None = None,
               cache_seconds: float = SNAPSHOT_CACHE_SECONDS, rejected: Callable[[], int] | None = None) -> Flask:
    """/health and /metrics. Both answer from one snapshot kept for `cache_seconds`, so scrapers polling every
    second cost the database one snapshot per interval."""
    app = Flask("crypto_ml_health")
    metrics = Metrics(rejected)
    if cache_seconds > 0:
        clock = lambda: utc_now().timestamp()  # noqa: E731 (the service's clock: a replay's hours, not the host's)
        snapshot = ttl_cache(maxsize=1, ttl=cache_seconds, timer=clock)(snapshot)
        skills = ttl_cache(maxsize=1, ttl=cache_seconds, timer=clock)(skills)

    def safe_snapshot() -> tuple[dict, bool]:
        try:
            return snapshot()
        except Exception as exc:  # a failing check is an unhealthy answer, never a 500
            log.warning("health check failed: %s: %s", type(exc).__name__, exc)
            return {"status": "unhealthy", "problems": [f"health check failed: {type(exc).__name__}"],
                    "database": {"reachable": False}}, False

    @app.get("/health")
    def health():
        report, healthy = safe_snapshot()
        return jsonify(report), 200 if healthy else 503

    @app.get("/metrics")
    def prometheus():
        report, healthy = safe_snapshot()
        try:
            live_skills = skills() if report["database"]["reachable"] else {}
        except Exception:
            live_skills = {}
        return Response(metrics.refresh(report, healthy, live_skills), mimetype=CONTENT_TYPE_LATEST)

    return app


OWN_THREADS = 2  # the threads kept for /health, /metrics and the pool's quick 503s
RETRY_AFTER_SECONDS = 5
BUSY = b"busy: every page worker is serving; try again in a few seconds\n"


class PagePool:
    """WSGI middleware: the pages run on at most `workers` threads at once (a download holds one until its last
    byte); a page request beyond them is answered 503 with Retry-After at once instead of queueing, so /health and
    /metrics, which never wait for a page worker, always find a thread."""

    def __init__(self, app: Callable, workers: int, exempt: tuple[str, ...] = ("/health", "/metrics")) -> None:
        self.app, self.workers, self.exempt = app, workers, exempt
        self._free = threading.BoundedSemaphore(workers)
        self.turned_away = 0

    def __call__(self, environ: dict, start_response: Callable):
        if environ.get("PATH_INFO") in self.exempt:
            return self.app(environ, start_response)
        if not self._free.acquire(blocking=False):
            self.turned_away += 1
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                                       ("Retry-After", str(RETRY_AFTER_SECONDS)),
                                                       ("Content-Length", str(len(BUSY)))])
            return [BUSY]
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._free.release()
            raise
        return _ReleasedOnClose(body, self._free.release)


class _Split:
    """/health and /metrics from `own`, everything else from `pages`."""

    def __init__(self, own: Callable, pages: Callable, exempt: tuple[str, ...]) -> None:
        self.own, self.pages, self.exempt = own, pages, exempt

    def __call__(self, environ: dict, start_response: Callable):
        return (self.own if environ.get("PATH_INFO") in self.exempt else self.pages)(environ, start_response)


class _ReleasedOnClose:
    """A response body that frees its page worker when the server closes it (after the last byte, or a client that
    went away), not when the view returns: a streamed CSV works until then."""

    def __init__(self, body, release: Callable[[], None]) -> None:
        self.body, self._release, self._released = body, release, False

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            if not self._released:
                self._released = True
                self._release()


HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}
PROXY_CHUNK = 64 * 1024


class PageProxy:
    """WSGI app that forwards a page request to the pages' own process (src/scheduler/pages.py) and streams its
    answer back: the pages' work (bootstraps, CSV, models) runs under that process's interpreter lock and at a
    lower CPU priority, so /health here answers as fast under load as idle."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    def __call__(self, environ: dict, start_response: Callable):
        target = quote(environ.get("PATH_INFO") or "/") + (f"?{environ['QUERY_STRING']}"
                                                           if environ.get("QUERY_STRING") else "")
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(environ.get("REQUEST_METHOD", "GET"), target, headers=headers)
            answer = connection.getresponse()
        except OSError:
            connection.close()
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                                       ("Retry-After", str(RETRY_AFTER_SECONDS))])
            return [b"the pages are starting again; try again in a few seconds\n"]
        start_response(f"{answer.status} {answer.reason}",
                       [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP])
        return _Streamed(answer, connection)


class _Streamed:
    def __init__(self, answer: http.client.HTTPResponse, connection: http.client.HTTPConnection) -> None:
        self.answer, self.connection = answer, connection

    def __iter__(self):
        while chunk := self.answer.read(PROXY_CHUNK):
            yield chunk

    def close(self) -> None:
        self.answer.close()
        self.connection.close()


class HealthServer:
    """waitress on a daemon thread; stop() closes it. The pages run within a PagePool of `page_workers`: in this
    process, or (route_pages) forwarded to a process of their own."""

    def __init__(self, app: Flask, host: str, port: int, setting: str = "health.port (and health.host)",
                 page_workers: int = 4):
        self.app = app
        self.pool = PagePool(app, page_workers)
        try:
            # its own socket map: stopping it must not close another server's channels
            self.server = create_server(self.pool, map={}, host=host, port=port, threads=page_workers + OWN_THREADS,
                                        ident="crypto-ml")
        except OSError as exc:
            raise UserError(f"http server cannot listen on {host}:{port} ({exc.strerror or exc}); stop what "
                            f"uses it or set {setting} to a free one") from None
        self.thread = threading.Thread(target=self._serve, name="health-server", daemon=True)
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def route_pages(self, pages: Callable) -> None:
        """Answer every request but /health and /metrics with `pages` (a PageProxy) from now on."""
        self.pool.app = _Split(self.app, pages, self.pool.exempt)

    def start(self) -> None:
        self.thread.start()
        paths = [r.rule for r in self.app.url_map.iter_rules() if "<" not in r.rule]  # not the static files
        log.info("http server on http://%s:%d (%s)", self.server.effective_host, self.port, ", ".join(paths))

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:  # a socket closed under the loop's select() while stopping: nothing is lost
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        """Close the server from its own loop thread (closing it from here races that thread's select())."""
        self._stopping.set()
        if self.thread.is_alive():
            self.server.trigger.pull_trigger(self._close_all)
            self.thread.join(timeout=5)
        else:
            self._close_all()

    def _close_all(self) -> None:
        """The listening socket and every open connection (a kept-alive one would keep the loop running)."""
        for channel in list(self.server._map.values()):  # noqa: SLF001 (waitress keeps its channels there)
            if channel is not self.server:
                channel.close()
        self.server.close()
