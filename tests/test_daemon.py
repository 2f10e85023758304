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
