"""The daemon as a subprocess: its own embedded database, the loopback exchange and Bot API, an hourly cycle
at start, /health and /metrics, a database outage, SIGTERM; and the catch-up of missed hours."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from src.database.connection import DatabaseConnection
from src.database.records import RecordStore
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
    from pgserver import _commands
    user = "pgserver" if os.geteuid() == 0 else None
    pgdata = data / "postgres"
    args = ["-w", "-m", "fast", "stop"] if action == "stop" else [
        "-w", "-o", '-h ""', "-o", f"-k {pgdata}", "-l", str(pgdata / "log"), "start"]
    _commands.pg_ctl(args, pgdata=pgdata, user=user, timeout=30)


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


def test_daemon_cycle_health_outage_and_sigterm(daemon_setup):
    path, port, bot, tmp_path = daemon_setup
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM", "DATABASE_URL", "CRYPTO_ML"))}
    process = subprocess.Popen([sys.executable, "-m", "src.main", "--config", str(path)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def hourly_done():
            try:
                status, body = _get(f"{base}/health")
            except OSError:
                return None
            report = json.loads(body)
            return report if report["jobs"].get("hourly", {}).get("runs") else None
        report = _wait(hourly_done, 240, "the first hourly cycle")
        assert report["jobs"]["startup"]["last_result"] == "ok", report["jobs"]
        assert report["jobs"]["hourly"]["last_result"] == "ok", report["jobs"]
        assert report["jobs"]["hourly"]["last_counts"]["predictions"] == 27
        status, _ = _get(f"{base}/health")
        assert status == 200, report["problems"]
        assert report["database"]["reachable"] and report["models"]["champions"] == 9
        status, metrics = _get(f"{base}/metrics")
        assert status == 200 and "crypto_ml_healthy 1.0" in metrics
        assert 'crypto_ml_newest_candle_age_hours{symbol="BTC/USDT"}' in metrics
        assert 'crypto_ml_candles_stored{symbol="ETH/USDT"} 1079.0' in metrics  # 45 days, less 1 Binance gap
        assert "crypto_ml_predictions_last_cycle 27.0" in metrics
        assert bot.sent("sendMessage"), "the hourly report reached the Bot API"

        # by its socket, not as a second pgserver user: the daemon must be the one to stop its server
        db = DatabaseConnection(f"postgresql://postgres:@/crypto_ml?host={tmp_path / 'data' / 'postgres'}")
        records = RecordStore(db)
        assert records.count("predictions") == 27
        assert records.reports()["success"].any()
        db.dispose()

        _pg_ctl(tmp_path / "data", "stop")  # the database goes away under the daemon
        status, body = _wait(lambda: (lambda r: r if r[0] == 503 else None)(_get(f"{base}/health")), 30, "503")
        assert json.loads(body)["database"]["reachable"] is False
        assert process.poll() is None, "the daemon keeps running"
        _pg_ctl(tmp_path / "data", "start")
        _wait(lambda: _get(f"{base}/health")[0] == 200, 30, "health back to 200")

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
        output = process.stdout.read()
    log_text = (tmp_path / "logs" / "crypto_ml.log").read_text()
    assert "job hourly ok" in log_text and "daemon stopped" in log_text
    assert TOKEN.split(":")[1] not in log_text + output
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists(), "the embedded server was stopped"


def test_missed_hours_are_listed_for_catch_up(ops, write_config):
    from src.models.backtest import prediction_rows
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
        "live"))
    # the current cycle predicts 11:00; the hours between 06:00 and it were missed
    assert daemon._missed_hours(now) == list(pd.date_range("2024-03-10 07:00", "2024-03-10 10:00", freq="h", tz="UTC"))
    long_ago = pd.Timestamp("2024-03-20 12:03", tz="UTC")  # a long outage: at most catch_up_hours back
    assert len(daemon._missed_hours(long_ago)) == 48


def test_health_cli_without_daemon(run_cli, write_config, empty_db_url):
    cfg = write_config({"database": {"url": empty_db_url}, "health": {"port": _free_port()}})
    result = run_cli("health", "--config", str(cfg))
    report = json.loads(result.stdout)
    assert report["database"]["reachable"] is True and report["source"].startswith("cli")
    assert result.returncode == 3 and "BTC/USDT data stale" in report["problems"]  # no candles at all


def test_demo_runs_offline_end_to_end(run_cli, write_config, tmp_path):
    cfg = write_config({})
    result = run_cli("demo", "--config", str(cfg), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "demo finished" in result.stdout and "P(up first)" in result.stdout
    chart = tmp_path / "data" / "demo" / "demo-daily-report.png"
    assert chart.read_bytes().startswith(b"\x89PNG")
