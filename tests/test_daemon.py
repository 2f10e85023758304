"""The daemon as a subprocess: its own embedded database, the loopback exchange and Bot API, an hourly cycle
at start, /health and /metrics, a database outage, SIGTERM; and the catch-up of missed hours."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from sqlalchemy import event

from src.database.connection import DatabaseConnection
from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from tests.conftest import pg_ctl
from tests.loopback_exchange import Fault
from tests.loopback_telegram import LoopbackBotApi

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "987654321:AAHdaemonTokenForTests-abcdefghijklmn"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _pg_ctl(data: Path, action: str) -> None:
    pgdata = data / "postgres"
    args = ["-w", "-m", "fast", "stop"] if action == "stop" else [
        "-w", "-o", '-h ""', "-o", f"-k {pgdata}", "-l", str(pgdata / "log"), "start"]
    pg_ctl(pgdata, *args)


def _start_daemon(config_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM", "DATABASE_URL", "CRYPTO_ML"))}
    return subprocess.Popen([sys.executable, "-m", "src.main", "--config", str(config_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _first_hourly_cycle(base: str, timeout: float) -> tuple[int, dict]:
    """(HTTP status, /health JSON) once the daemon's first hourly cycle has run."""
    def done():
        try:
            status, body = _get(f"{base}/health")
        except OSError:
            return None
        report = json.loads(body)
        return (status, report) if report["jobs"].get("hourly", {}).get("runs") else None
    return _wait(done, timeout, "the first hourly cycle")


@pytest.fixture
def daemon_setup(tmp_path, exchange, loaded_exchange):
    loaded_exchange(exchange, days=45)
    with LoopbackBotApi(TOKEN) as bot:
        port = _free_port()
        config = {
            "trading": {"lookback_days": 45},
            "database": {"url": "embedded"},
            "exchange": {"api_urls": {"public": exchange.api_url}, "timeout_ms": 5000},
            "ml": {"min_samples_for_training": 300},
            "telegram": {"bot_token": TOKEN, "chat_id": "777", "base_url": bot.base_url},
            "health": {"port": port},
            "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")},
        }
        path = tmp_path / "daemon.yaml"
        path.write_text(yaml.safe_dump(config))
        yield path, port, bot, tmp_path


@pytest.mark.host_tz
def test_daemon_cycle_health_outage_and_sigterm(daemon_setup):
    path, port, bot, tmp_path = daemon_setup
    process = _start_daemon(path)
    base = f"http://127.0.0.1:{port}"
    try:
        _, report = _first_hourly_cycle(base, 240)
        assert report["jobs"]["startup"]["last_result"] == "ok", report["jobs"]
        assert report["jobs"]["hourly"]["last_result"] == "ok", report["jobs"]
        assert report["jobs"]["hourly"]["last_counts"]["predictions"] == 27
        status, _ = _get(f"{base}/health")
        assert status == 200, report["problems"]
        assert report["database"]["reachable"] and report["models"]["champions"] == 9
        status, metrics = _get(f"{base}/metrics")
        assert status == 200 and "crypto_ml_healthy 1.0" in metrics
        assert "crypto_ml_groups_without_forecast 0.0" in metrics
        assert 'crypto_ml_newest_candle_age_hours{symbol="BTC/USDT"}' in metrics
        recent = re.search(r'crypto_ml_candles_last_7_days\{symbol="ETH/USDT"\} ([0-9.]+)', metrics)
        assert recent, metrics
        assert "crypto_ml_predictions_last_cycle 27.0" in metrics
        assert bot.sent("sendMessage"), "the hourly report reached the Bot API"

        # by its socket, not as a second pgserver user: the daemon must be the one to stop its server
        db = DatabaseConnection(f"postgresql://postgres:@/crypto_ml?host={tmp_path / 'data' / 'postgres'}")
        records = RecordStore(db)
        assert records.count("predictions") == 27
        week = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=168)
        stored = DatabaseOperations(db).recent_candles(["ETH/USDT"], "1h", week)["ETH/USDT"][0]
        assert abs(float(recent.group(1)) - stored) <= 1, (recent.group(1), stored)  # an hour may close meanwhile
        assert records.reports()["success"].any()

        seen = len(bot.state.requests)
        bot.command("/now btc")  # the daemon listens for commands from the configured chat
        _wait(lambda: (records.reports()["report_type"] == "command:/now").any(), 60, "the answer to /now")
        # at :02 the hourly report may be sent meanwhile: the answer is the one message that starts "Now"
        answers = [r["fields"]["text"] for r in bot.state.requests[seen:]
                   if r["method"] == "sendMessage" and r["fields"]["text"].startswith("<b>Now</b>")]
        assert len(answers) == 1 and "BTC/USDT" in answers[0] and "P(up)" in answers[0] and "ETH" not in answers[0]
        assert 'crypto_ml_telegram_rejected_total 0.0' in _get(f"{base}/metrics")[1]

        status, page = _get(f"{base}/")  # the track record for people, on the same server
        newest = records.newest_forecasts([("BTC/USDT", 0.01)])[0].iloc[0]
        assert status == 200 and page.count('<section class="card">') == 9 and "Healthy" in page
        assert f"candle {newest.timestamp:%Y-%m-%d %H:%M} UTC" in page and f"P(up) <b>{newest.probability:.0%}" in page
        assert _get(f"{base}/forecasts?asset=eth")[0] == 200 and _get(f"{base}/record")[0] == 200
        # the pages answer from a process of their own, at the lowest priority (health.page_process)
        _wait(lambda: "pages process" in (tmp_path / "logs" / "crypto_ml.log").read_text(), 60, "the pages process")
        [pages] = [p for p in psutil.Process(process.pid).children() if "--daemon-url" in p.cmdline()]
        assert pages.nice() == 19 and f"http://127.0.0.1:{port}" in pages.cmdline()
        assert "Healthy" in _get(f"{base}/")[1]  # its verdict is the daemon's /health
        db.dispose()

        _pg_ctl(tmp_path / "data", "stop")  # the database goes away under the daemon
        status, body = _wait(lambda: (lambda r: r if r[0] == 503 else None)(_get(f"{base}/health")), 30, "503")
        assert json.loads(body)["database"]["reachable"] is False
        assert process.poll() is None, "the daemon keeps running"
        _pg_ctl(tmp_path / "data", "start")
        _wait(lambda: _get(f"{base}/health")[0] == 200, 30, "health back to 200")

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)  # while the bot long-polls the Bot API for commands
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 15
        assert not pages.is_running() or pages.status() == psutil.STATUS_ZOMBIE, "the pages stopped with the daemon"
    finally:
        if process.poll() is None:
            process.kill()
        output = process.stdout.read()
    log_text = (tmp_path / "logs" / "crypto_ml.log").read_text()
    assert "job hourly ok" in log_text and "daemon stopped" in log_text
    assert TOKEN.split(":")[1] not in log_text + output
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists(), "the embedded server was stopped"


@pytest.mark.host_tz
def test_missed_hours_are_listed_for_catch_up(ops, write_config):
    from src.database.records.rows import prediction_rows, resolution_rows
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config

    config = Config(write_config({"database": {"url": ops.db.database_url}, "scheduler": {"catch_up_hours": 48}}))
    daemon = Daemon(Context(config))
    now = pd.Timestamp("2024-03-10 12:03", tz="UTC")
    assert daemon._missed_hours(now) == []  # nothing predicted yet: nothing to catch up
    last = pd.Timestamp("2024-03-10 06:00", tz="UTC")
    RecordStore(ops.db).save_predictions(prediction_rows(
        "BTC/USDT", "1h", 0.02, "xgboost", "v1", pd.DatetimeIndex([last]), np.array([0.5]), np.array([1.0]), True,
        "live", "v1"))
    # the current cycle predicts 11:00; the hours between 06:00 and it were missed
    assert daemon._missed_hours(now) == list(pd.date_range("2024-03-10 07:00", "2024-03-10 10:00", freq="h", tz="UTC"))
    # an hour with direction forecasts but no how-soon ones (a kill between two writes, before they were one
    # transaction) is not whole: catch-up predicts it again (existing rows are kept, the missing ones added)
    RecordStore(ops.db).save_resolution_forecasts(resolution_rows(
        "BTC/USDT", "1h", 0.02, "vol_logistic", "v1", pd.DatetimeIndex([last - pd.Timedelta(hours=1)]),
        np.array([[0.1, 0.5, 0.9, 3.0, 20.0, 150.0]]), True, "live"))
    assert daemon._missed_hours(now)[0] == last
    long_ago = pd.Timestamp("2024-03-20 12:03", tz="UTC")  # a long outage: at most catch_up_hours back
    assert len(daemon._missed_hours(long_ago)) == 48


@pytest.mark.host_tz
def test_health_cli_without_daemon(run_cli, write_config, empty_db_url):
    cfg = write_config({"database": {"url": empty_db_url}, "health": {"port": _free_port()}})
    result = run_cli("health", "--config", str(cfg))
    report = json.loads(result.stdout)
    assert report["database"]["reachable"] is True and report["source"].startswith("cli")
    assert result.returncode == 3 and "BTC/USDT data stale" in report["problems"]  # no candles at all


@pytest.mark.host_tz
def test_demo_runs_offline_end_to_end(run_cli, write_config, tmp_path):
    cfg = write_config({})
    result = run_cli("demo", "--config", str(cfg), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "demo finished" in result.stdout and "P(up first)" in result.stdout
    chart = tmp_path / "data" / "demo" / "demo-daily-report.png"
    assert chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.host_tz
def test_daemon_on_shipped_defaults_isolates_an_asset_with_short_history(tmp_path, exchange, loaded_exchange):
    """The shipped config (4 years of training history, 500-sample minimum) against an exchange that has
    200 days of BTC and SOL but only 20 days of ETH: ETH's groups are skipped with their reason, BTC and SOL
    are trained and predicted, /health is 503 and names the ETH groups, the hourly report says why."""
    loaded_exchange(exchange, days=200, symbols=("BTC_USDT", "SOL_USDT"))
    loaded_exchange(exchange, days=20, symbols=("ETH_USDT",))
    with LoopbackBotApi(TOKEN) as bot:
        port = _free_port()
        path = tmp_path / "defaults.yaml"
        path.write_text(yaml.safe_dump({  # only where things are: every other value is the shipped default
            "exchange": {"api_urls": {"public": exchange.api_url}},
            "telegram": {"bot_token": TOKEN, "chat_id": "777", "base_url": bot.base_url},
            "health": {"port": port},
            "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}}))
        process = _start_daemon(path)
        try:
            status, report = _first_hourly_cycle(f"http://127.0.0.1:{port}", 600)
            startup, hourly = report["jobs"]["startup"], report["jobs"]["hourly"]
            assert startup["last_result"] == "ok" and startup["last_counts"]["groups_skipped"] == 3, startup
            assert hourly["last_result"] == "ok", hourly
            assert hourly["last_counts"]["predictions"] == 2 * 3 * 3  # BTC and SOL, 3 targets, 3 models
            assert status == 503
            for target in ("0.01", "0.02", "0.05"):
                assert any(p.startswith(f"ETH/USDT {target}: no champion model (") and "labelled samples" in p
                           for p in report["problems"]), report["problems"]
                assert "labelled samples" in report["skipped_groups"][f"ETH/USDT {target}"]
                assert report["forecasts"][f"BTC/USDT {target}"]["problem"] is None
            assert not any(p.startswith(("BTC", "SOL")) for p in report["problems"]), report["problems"]
            hourly_report = [m["fields"]["text"] for m in bot.sent("sendMessage")
                             if "Hourly forecast" in m["fields"].get("text", "")][-1]
            assert "No forecast" in hourly_report and "ETH/USDT 0.05: not trained" in hourly_report
            assert "SOL/USDT" in hourly_report and "BTC/USDT" in hourly_report
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
            output = process.stdout.read()
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.host_tz
def test_candle_repair_runs_between_hourly_cycles(ops, exchange, loaded_exchange, write_config):
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    from tests.loopback_exchange import HOUR_MS

    loaded_exchange(exchange, days=3, symbols=("BTC_USDT",))
    rows = exchange.state.candles["BTCUSDT"]
    newest_closed = rows[-2, 0]
    ops.save_ohlcv_data("BTC/USDT", "1h", rows[rows[:, 0] <= newest_closed - 3 * HOUR_MS].tolist())
    config = Config(write_config({"database": {"url": ops.db.database_url}, "trading": {"assets": ["BTC/USDT"]},
                                  "exchange": {"api_urls": {"public": exchange.api_url}, "max_retries": 0}}))
    daemon = Daemon(Context(config))
    now = pd.Timestamp(newest_closed + HOUR_MS, unit="ms", tz="UTC")
    assert daemon.repair(now + pd.Timedelta(minutes=1)) == {"behind": 0}  # before :02 the hourly cycle fetches
    exchange.state.faults.extend(Fault("500") for _ in range(10))
    assert daemon.repair(now + pd.Timedelta(minutes=7)) == {"behind": 1, "repaired": 0}  # exchange still down
    assert "hourly" not in daemon.queued
    exchange.state.faults.clear()
    assert daemon.repair(now + pd.Timedelta(minutes=12)) == {"behind": 1, "repaired": 1}
    assert "hourly" in daemon.queued  # the cycle runs at once, not at the next hour
    assert ops.get_last_complete_timestamp("BTC/USDT") == now - pd.Timedelta(hours=1)
    assert daemon.repair(now + pd.Timedelta(minutes=17)) == {"behind": 0}
    with _statements(daemon.ctx.ops.db.engine) as sent:  # the hour's candles are known stored: not even a query
        assert daemon.repair(now + pd.Timedelta(minutes=22)) == {"behind": 0}
    assert sent == []
    assert daemon.repair(now + pd.Timedelta(minutes=67))["behind"] == 1  # the next hour is looked at again


@contextmanager
def _statements(engine):
    """The SQL statements the engine sends within the block."""
    sent: list[str] = []

    def record(conn, cursor, statement, *args):
        sent.append(statement)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.host_tz
def test_health_reads_are_shared_until_a_job_may_have_written(ops, exchange, loaded_exchange, write_config):
    """A replay's health rows come minutes apart on its clock and milliseconds apart on the wall's: they share one
    set of database reads, their ages still following the clock, until a job that may have written has run (or the
    hour turns, or 5 s pass on the wall clock)."""
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.clock import SimulatedClock, use_clock
    from src.utils.config import Config

    loaded_exchange(exchange, days=3, symbols=("BTC_USDT",))
    rows = exchange.state.candles["BTCUSDT"]
    ops.save_ohlcv_data("BTC/USDT", "1h", rows[:-1].tolist())
    config = Config(write_config({"database": {"url": ops.db.database_url}, "trading": {"assets": ["BTC/USDT"]}}))
    newest = pd.Timestamp(rows[-2, 0], unit="ms", tz="UTC")
    clock = SimulatedClock(newest + pd.Timedelta(hours=1, minutes=10))
    with use_clock(clock):
        daemon = Daemon(Context(config))
        first, _ = daemon.snapshot()
        assert first["data"]["BTC/USDT"]["age_hours"] == pytest.approx(10 / 60, abs=0.01)
        clock.advance_to(clock.now() + pd.Timedelta(minutes=30))
        daemon.run_job("health", lambda: {})
        daemon.run_job("repair", lambda: {"behind": 0})
        with _statements(daemon.ctx.ops.db.engine) as sent:
            again, _ = daemon.snapshot()
        assert sent == []
        assert again["data"]["BTC/USDT"]["age_hours"] == pytest.approx(40 / 60, abs=0.01)  # the clock's age
        daemon.run_job("hourly", lambda: {"predictions": 0})
        with _statements(daemon.ctx.ops.db.engine) as sent:
            daemon.snapshot()
        assert any("ohlcv_data" in statement for statement in sent)
        clock.advance_to(clock.now() + pd.Timedelta(minutes=30))  # a new hour: the week's count ends elsewhere
        with _statements(daemon.ctx.ops.db.engine) as sent:
            daemon.snapshot()
        assert sent
        daemon.ctx.ops.db.dispose()


@pytest.mark.host_tz
def test_first_run_without_the_exchange_says_so_once_and_points_to_demo(tmp_path):
    """The exchange's address refuses connections (a closed loopback port): one line names it unreachable with
    the cause, that the daemon keeps retrying and that `demo` works offline; no per-asset retries or per-group
    training errors; the hourly report and /health name why there is no forecast."""
    closed = _free_port()  # nothing listens there
    port = _free_port()
    config = {"database": {"url": "embedded"},
              "exchange": {"api_urls": {"public": f"http://127.0.0.1:{closed}/api/v3"}, "timeout_ms": 2000,
                           "max_retries": 1, "retry_max_seconds": 5},
              "health": {"port": port},
              "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = _start_daemon(path)
    try:
        status, report = _first_hourly_cycle(f"http://127.0.0.1:{port}", timeout=240)
        assert status == 503 and any("no candles stored yet" in p for p in report["problems"])
    finally:
        daemon.send_signal(signal.SIGINT)
        output = daemon.communicate(timeout=60)[0]
    unreachable = [line for line in output.splitlines() if "is unreachable" in line and "ERROR" in line]
    assert len(unreachable) == 2, output  # start-up, then the first hourly cycle's repair: once each
    assert "python -m src.main demo" in unreachable[0] and "keeps running" in unreachable[0]
    assert "ConnectionRefused" in unreachable[0] or "NetworkError" in unreachable[0]
    assert "history not complete" not in output and "train BTC/USDT" not in output
    assert "not training BTC/USDT, ETH/USDT, SOL/USDT yet: no candles stored" in output


def _servers_under(folder: str) -> list:
    """The postgres processes whose command line names `folder` (this demo's own, not a concurrent run's)."""
    import psutil
    return [p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] and "postgres" in p.info["name"]
            and folder in " ".join(p.info["cmdline"] or [])]


@pytest.mark.host_tz
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_demo_leaves_no_server_behind(write_config, stop):
    cfg = write_config({})
    demo = subprocess.Popen([sys.executable, "-m", "src.main", "demo", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    folder = None
    try:
        for line in demo.stdout:  # stop it mid-way, once its server runs and training has begun
            if "throwaway database (" in line:
                folder = line.split("throwaway database (", 1)[1].rstrip().rstrip(")")
            if line.startswith("== train"):
                break
        assert folder and _servers_under(folder), "the demo's server should be running by now"
        demo.send_signal(stop)
        output = demo.communicate(timeout=120)[0]
    finally:
        demo.kill()
    assert demo.returncode == 128 + stop or (stop == signal.SIGINT and demo.returncode == 130), output
    assert _wait(lambda: not _servers_under(folder), 30, "the demo's server to stop")
    # the command's own last word: a stop that lands in a garbage-collector callback is sent again, not lost
    assert output.strip().splitlines()[-1] in ("interrupted", f"stopped by {signal.Signals(stop).name}"), output[-2000:]


@pytest.mark.host_tz
def test_a_job_submitted_from_two_threads_at_once_is_queued_once(write_config):
    """The schedule loop and a job (repair queues the hourly cycle) submit at the same time: one run waits."""
    import threading

    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    daemon = Daemon(Context(Config(write_config({}))))
    start = threading.Barrier(4)

    def submit_many():
        start.wait()
        for _ in range(2000):
            daemon.submit("hourly", dict)
    threads = [threading.Thread(target=submit_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert daemon.jobs.qsize() == 1


@pytest.mark.host_tz
def test_sigterm_while_the_daemon_trains_stops_it_within_15_s_and_is_no_failure(daemon_setup):
    """The first start trains group after group: a stop ends it at the next unit or group, logged as a stop (not
    "job startup FAILED", not an exchange error), and the process is gone within 15 s."""
    path, port, bot, tmp_path = daemon_setup
    log_file = tmp_path / "logs" / "crypto_ml.log"
    process = _start_daemon(path)
    try:
        _wait(lambda: log_file.exists() and "trained on" in log_file.read_text(), 600, "the first group trained")
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
    text = log_file.read_text()
    assert "job startup stopped at a safe point" in text and "daemon stopped" in text
    assert "FAILED" not in text and "abandoned" not in text and "ERROR" not in text, text[-2000:]


@pytest.mark.host_tz
def test_the_daemons_daily_job_end_to_end(trained, write_config, tmp_path):
    """The daily job as the schedule runs it, on a trained database with two days of live forecasts: the day's
    performance, the track record's daily sums, the retrain, the daily report with its chart through the real
    Telegram client (loopback Bot API), and the retention at its end."""
    from src.models.live.outcomes import resolve_outcomes
    from src.models.live.prediction import Predictor
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    from tests.conftest import TRAINED_TARGETS
    ops, records, registry = trained
    predictor = Predictor(ops, records, registry, TRAINED_TARGETS)
    for hour in pd.date_range("2023-01-19 00:00", "2023-01-20 23:00", freq="h", tz="UTC"):
        predictor.predict(["BTC/USDT", "ETH/USDT"], hour + pd.Timedelta(hours=1, minutes=2))
    now = pd.Timestamp("2023-01-21 00:15", tz="UTC")
    resolve_outcomes(ops, records, now)
    with ops.db.engine.begin() as conn:  # what a year of running left: a month-old feature row
        conn.exec_driver_sql("INSERT INTO feature_cache (symbol, timeframe, timestamp, feature_version, feature_set) "
                             "VALUES ('BTC/USDT', '1h', '2022-12-01', 'old', '{}')")
    charts = tmp_path / "reports"
    charts.mkdir()
    for day in pd.date_range("2022-11-01", periods=40, freq="D"):
        (charts / f"daily-{day:%Y%m%d}.png").write_bytes(b"old")
    with LoopbackBotApi(TOKEN) as bot:
        config = Config(write_config({
            "database": {"url": ops.db.database_url},
            "trading": {"assets": ["BTC/USDT", "ETH/USDT"], "target_percentages": TRAINED_TARGETS},
            "ml": {"n_workers": 1}, "paths": {"data_dir": str(tmp_path)},
            "telegram": {"bot_token": TOKEN, "chat_id": "777", "base_url": bot.base_url}}))
        counts = Daemon(Context(config)).daily(now)
        photos = bot.sent("sendPhoto")
    assert counts["performance_days"] >= 1, counts
    assert counts["groups_trained"] == 0 and counts["groups_skipped"] == 0  # every group had its champion
    parts = [counts[f"{part}_s"] for part in ("record", "retrain", "report", "upkeep")]  # its log line's durations
    assert all(seconds >= 0 for seconds in parts) and parts[1] > 0, counts
    assert records.performance("live", pd.Timestamp("2023-01-20").date()).shape[0] > 0
    from src.database.records.scores import settled_through
    assert records.stored_through("live") == settled_through(now, 168)  # no day settled yet: 168-hour windows
    assert len(photos) == 1 and photos[0]["files"]["photo"][:8] == b"\x89PNG\r\n\x1a\n"
    text = photos[0]["fields"].get("caption") or bot.sent("sendMessage")[-1]["fields"]["text"]
    assert "2023-01-20" in text
    chart = charts / "daily-20230120.png"
    assert chart.read_bytes() == photos[0]["files"]["photo"]
    assert len(list(charts.glob("daily-*.png"))) == 30 and chart.exists()  # the retention kept the newest 30
    assert counts["removed"] >= 11 and records.count("feature_cache") > 0
    with ops.db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM feature_cache WHERE feature_version = 'old'").scalar() == 0
    assert records.reports()["success"].all()
