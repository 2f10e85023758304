"""Operations hardening, as an operator meets it: stop signals, secrets, a non-superuser role, concurrent
first commands, bad input with one clear line, tracebacks in the log. Real CLI processes, the embedded
PostgreSQL and the loopback exchange."""
from __future__ import annotations

import gzip
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from src.database.embedded import create_database
from tests.conftest import raw_connect
from tests.loopback_exchange import Fault
from tests.shared_data import load_candles

ROOT = Path(__file__).resolve().parents[1]
SECRET = "S3cretPw-never-shown"


def _clean_env(**extra: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "CRYPTO_ML_CONFIG")}
    return {**base, **extra}


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "src.main", *args], cwd=ROOT, env=_clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _server_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "postgres" in (process.info["name"] or "") and str(pgdata) in cmdline:
            found.append(process)
    return found


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# ---- stop signals and the embedded server ---------------------------------------------------------
@pytest.mark.host_tz
def test_sigterm_to_backfill_stops_its_server_and_dead_users_are_pruned(tmp_path, exchange, loaded_exchange,
                                                                          write_config):
    loaded_exchange(exchange, days=60, symbols=("BTC_USDT",))
    exchange.state.faults.extend(Fault("slow", seconds=1.0) for _ in range(60))
    cfg = write_config({"trading": {"assets": ["BTC/USDT"]}, "database": {"url": "embedded"},
                        "exchange": {"api_urls": {"public": exchange.api_url}}})
    pgdata = tmp_path / "data" / "postgres"
    backfill = _cli("backfill", "--days", "60", "--config", str(cfg))
    _wait_for(lambda: len(exchange.state.requests) >= 4, 120, "backfill to be fetching")
    backfill.send_signal(signal.SIGTERM)
    assert backfill.wait(timeout=60) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in backfill.stderr.read()
    _wait_for(lambda: not _server_processes(pgdata), 30, "the embedded server to stop")
    assert not (pgdata / "postmaster.pid").exists()

    # a process killed outright leaves its pid in pgserver's list: the next command prunes it and, being
    # the last live user, stops the server when it exits
    exchange.state.faults.extend(Fault("slow", seconds=1.0) for _ in range(60))
    asked = len(exchange.state.requests)
    killed = _cli("backfill", "--days", "60", "--config", str(cfg))
    _wait_for(lambda: len(exchange.state.requests) >= asked + 2, 120, "the second backfill to be fetching")
    assert str(killed.pid) in (pgdata / ".handle_pids.json").read_text()
    killed.kill()
    killed.wait(timeout=30)
    assert _server_processes(pgdata), "SIGKILL leaves the server running"
    status = subprocess.run([sys.executable, "-m", "src.main", "status", "--config", str(cfg)], cwd=ROOT,
                            env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    _wait_for(lambda: not _server_processes(pgdata), 30, "status to stop the server it was last to use")

    # a list cut short (a process killed while writing it: seen after a month's replay) is read as no users
    (pgdata / ".handle_pids.json").write_text("")
    status = subprocess.run([sys.executable, "-m", "src.main", "status", "--config", str(cfg)], cwd=ROOT,
                            env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    _wait_for(lambda: not _server_processes(pgdata), 30, "status to stop the server again")


@pytest.mark.host_tz
def test_three_concurrent_init_db_on_a_fresh_folder_all_succeed(write_config):
    cfg = write_config({"database": {"url": "embedded"}})
    runs = [_cli("init-db", "--config", str(cfg)) for _ in range(3)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0, 0], results


@pytest.mark.host_tz
def test_backfill_beside_import_csv_on_a_fresh_folder(exchange, loaded_exchange, write_config, tmp_path):
    loaded_exchange(exchange, days=30, symbols=("BTC_USDT",))
    cfg = write_config({"trading": {"assets": ["BTC/USDT", "ETH/USDT"]}, "database": {"url": "embedded"},
                        "exchange": {"api_urls": {"public": exchange.api_url}}})
    csv = tmp_path / "eth.csv"
    load_candles("ETH_USDT", "2023-01-01", "2023-03-31 23:00").to_csv(csv, index=False)
    runs = [_cli("backfill", "--symbol", "BTC/USDT", "--days", "30", "--config", str(cfg)),
            _cli("import-csv", str(csv), "--symbol", "ETH/USDT", "--config", str(cfg))]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0], results


# ---- secrets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    f"postgresql://u:{SECRET}@127.0.0.1:5",  # malformed: no database name
    f"postgresql://u:{SECRET}@127.0.0.1:1/crypto_ml",  # unreachable
    f"postgresql://u@127.0.0.1:1/crypto_ml?password={SECRET}",  # password as a query parameter
    f"postgresql://u@127.0.0.1:1/crypto_ml?sslmode=disable&password={SECRET}&application_name=x",
])
@pytest.mark.host_tz
def test_a_password_never_appears_in_any_output(run_cli, write_config, url):
    cfg = write_config({"health": {"port": _free_port()}})
    for command in ("status", "init-db", "health"):
        result = run_cli(command, "--config", str(cfg), env={"DATABASE_URL": url}, timeout=120)
        assert result.returncode != 0
        assert SECRET not in result.stdout + result.stderr, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.host_tz
def test_status_masks_a_query_password_of_a_reachable_database(run_cli, write_config, empty_db_url):
    cfg = write_config({"database": {"url": f"{empty_db_url}&password={SECRET}"}})
    result = run_cli("status", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr and "password=***" in result.stdout


def test_libpq_strings_and_urls_are_redacted():
    from src.utils.secrets import redact
    assert SECRET not in redact(f"host=db port=5432 password={SECRET} dbname=x")
    assert SECRET not in redact(f"host=db password='{SECRET} with space' dbname=x")
    assert redact(f"postgresql://u:{SECRET}@h/db") == "postgresql://u:***@h/db"


# ---- a role that is not a superuser -----------------------------------------------------------------
@pytest.mark.host_tz
@pytest.mark.parametrize("precreated", [False, True])
def test_a_plain_role_can_migrate_import_list_gaps_and_check_health(pg_admin_url, run_cli, write_config,
                                                                      tmp_path, precreated):
    """A database owner without superuser: TimescaleDB is detected from the catalog (created beforehand by
    a superuser, as managed services do, or created by the owner, as a trusted extension allows)."""
    from src.database.connection import DatabaseConnection
    from src.database.embedded import timescaledb_installed
    if precreated and not timescaledb_installed():
        pytest.skip("TimescaleDB not built into pgserver (.ci/run builds it)")
    name = f"app_owned_{int(precreated)}_{os.getpid()}"
    admin = pg_admin_url.replace("+psycopg2", "")
    with raw_connect(pg_admin_url) as conn, conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("DO $$ BEGIN CREATE ROLE app_user LOGIN NOSUPERUSER; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    create_database(admin, name)
    database_url = pg_admin_url.replace("/postgres?", f"/{name}?", 1)
    with raw_connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{name}" OWNER TO app_user')
        cur.execute("ALTER SCHEMA public OWNER TO app_user")
        if precreated:
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    app_url = database_url.replace("postgresql+psycopg2://postgres:@", "postgresql://app_user@", 1)
    cfg = write_config({"database": {"url": app_url}, "trading": {"assets": ["BTC/USDT"]},
                        "health": {"port": _free_port()}})
    assert run_cli("init-db", "--config", str(cfg)).returncode == 0
    csv = tmp_path / "btc.csv"
    load_candles("BTC_USDT", "2023-03-01", "2023-03-10 23:00").to_csv(csv, index=False)
    imported = run_cli("import-csv", str(csv), "--symbol", "BTC/USDT", "--config", str(cfg))
    assert imported.returncode == 0, imported.stderr
    gaps = run_cli("gaps", "--config", str(cfg))
    assert gaps.returncode == 0, gaps.stderr
    health = run_cli("health", "--config", str(cfg))
    assert health.returncode == 3 and "permission denied" not in health.stdout + health.stderr  # stale: 2023
    db = DatabaseConnection(app_url)
    assert db.has_timescaledb() == timescaledb_installed()
    db.dispose()


# ---- bad input: one clear line, nothing stored changed ----------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _candles_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,open,high,low,close,volume\n" + "".join(f"{r}\n" for r in rows))
    return path


GOOD_ROW = "1677628800000,23141.57,23279.92,23075.27,23251.99,3108.1"  # 2023-03-01 00:00


HEADER = b"timestamp,open,high,low,close,volume\n"
BAD_FILES = [
    ("empty.csv", b"", "the file is empty"),
    ("cut.csv.gz", gzip.compress(HEADER + b"".join(b"%d,1.%d,2,0.5,1,3\n" % (1677628800000 + i * 3600000, i)
                                                   for i in range(2000)))[:2000], "truncated or damaged"),
    ("float.csv", HEADER + b"1611165600000.0,1,2,0.5,1,3\n", "line 2: timestamp is not a whole"),
    ("huge.csv", HEADER + b"1611165600000,1,1e300,0.5,1,3\n", "line 2: a value is too large"),
    ("negative.csv", HEADER + b"-3600000,1,2,0.5,1,3\n", "line 2: timestamp is before 2009"),
    ("offgrid.csv", HEADER + b"1611165600001,1,2,0.5,1,3\n", "not an open time"),
]


@pytest.mark.host_tz
@pytest.mark.parametrize("name, content, expected", BAD_FILES)
def test_each_bad_csv_is_one_line_and_changes_nothing(ops, run_cli, write_config, tmp_path, name, content,
                                                      expected):
    ops.save_ohlcv_data("BTC/USDT", "1h", [[1677628800000, 1.0, 2.0, 0.5, 1.5, 3.0]])
    path = tmp_path / name
    path.write_bytes(content)
    cfg = write_config({"database": {"url": ops.db.database_url}})
    result = run_cli("import-csv", str(path), "--symbol", "BTC/USDT", "--config", str(cfg))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and expected in lines[0], result.stderr
    assert str(path) in lines[0] and "Traceback" not in result.stderr
    assert ops.get_candle_count("BTC/USDT") == 1


@pytest.mark.host_tz
def test_a_long_symbol_and_an_unknown_timeframe_are_refused_in_one_line(ops, run_cli, write_config, tmp_path):
    path = _candles_csv(tmp_path / "ok.csv", [GOOD_ROW])
    cfg = write_config({"database": {"url": ops.db.database_url}})
    result = run_cli("import-csv", str(path), "--symbol", "VERYLONGSYMBOLNAME/USDT", "--config", str(cfg))
    assert result.returncode == 1 and "--symbol" in result.stderr and "at most 20" in result.stderr
    result = run_cli("import-csv", str(path), "--symbol", "BTC/USDT", "--timeframe", "7x", "--config", str(cfg))
    assert result.returncode == 2 and "invalid choice: '7x'" in result.stderr
    assert ops.get_candle_count("BTC/USDT") == 0
    result = run_cli("import-csv", str(path), "--symbol", "XRP/USDT", "--config", str(cfg))
    assert result.returncode == 1 and "XRP/USDT is not in trading.assets" in result.stderr
    assert ops.get_candle_count("XRP/USDT") == 0


@pytest.mark.parametrize("argv, expected", [
    (["--confg", "x.yaml", "status"], "unknown option --confg; did you mean --config?"),
    (["status", "--confg=x.yaml"], "unknown option --confg; did you mean --config?"),
    (["gaps", "--hours", "-5"], "argument --hours: '-5' is not a whole number above 0"),
    (["recover", "--hours", "0"], "argument --hours: '0' is not a whole number above 0"),
    (["backfill", "--days", "x"], "argument --days: 'x' is not a whole number above 0"),
])
@pytest.mark.host_tz
def test_cli_input_mistakes_get_one_clear_line(run_cli, argv, expected):
    result = run_cli(*argv)
    assert result.returncode == 2 and expected in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.host_tz
def test_import_keeps_exact_decimals_and_never_overwrites_without_replace(ops, run_cli, write_config, tmp_path):
    exact = "1677628800000,0.1234567891,0.1234567899,0.1234567881,0.1234567892,123456789.0123456789"
    cfg = write_config({"database": {"url": ops.db.database_url}})
    first = _candles_csv(tmp_path / "first.csv", [exact, "1677632400000,2,3,1,2.5,10"])
    assert run_cli("import-csv", str(first), "--symbol", "SOL/USDT", "--config", str(cfg)).returncode == 0
    with raw_connect(ops.db.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT open::text, high::text, close::text, volume::text FROM ohlcv_data ORDER BY timestamp")
        assert cur.fetchone() == ("0.1234567891", "0.1234567899", "0.1234567892", "123456789.0123456789")
    changed = _candles_csv(tmp_path / "changed.csv", [exact.replace("0.1234567892", "0.1234567893"),
                                                      "1677632400000,2,3,1,2.5,10", "1677636000000,2,3,1,2.5,10"])
    refused = run_cli("import-csv", str(changed), "--symbol", "SOL/USDT", "--config", str(cfg))
    assert refused.returncode == 1 and "1 candles differ" in refused.stderr and "--replace" in refused.stderr
    assert ops.get_candle_count("SOL/USDT") == 2  # nothing stored: not even the new hour
    replaced = run_cli("import-csv", str(changed), "--symbol", "SOL/USDT", "--replace", "--config", str(cfg))
    assert replaced.returncode == 0, replaced.stderr
    assert ops.get_candle_count("SOL/USDT") == 3
    with raw_connect(ops.db.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT close::text FROM ohlcv_data ORDER BY timestamp LIMIT 1")
        assert cur.fetchone() == ("0.1234567893",)


@pytest.mark.parametrize("tree, expected", [
    ({"trading": {"asets": ["BTC/USDT"]}}, "config key trading.asets in"),
    ({"health": {"prot": 8081}}, "did you mean health.port?"),
    ({"trading": {"assets": None}}, "config key trading.assets in"),
])
@pytest.mark.host_tz
def test_misspelt_keys_and_nulls_are_errors(run_cli, write_config, tree, expected):
    cfg = write_config(tree)
    result = run_cli("status", "--config", str(cfg))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.host_tz
def test_a_busy_health_port_names_the_setting(run_cli, write_config, empty_db_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = write_config({"database": {"url": empty_db_url}, "health": {"port": busy.getsockname()[1]},
                            "scheduler": {"run_at_start": False}})
        result = run_cli("run", "--config", str(cfg), timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "health.port" in lines[-1] and "Errno" not in result.stderr, result.stderr


@pytest.mark.host_tz
def test_a_database_stopped_mid_command_is_one_line(tmp_path, exchange, loaded_exchange, write_config):
    from tests.test_daemon import _pg_ctl
    loaded_exchange(exchange, days=60, symbols=("BTC_USDT",))
    exchange.state.faults.extend(Fault("slow", seconds=1.0) for _ in range(60))
    cfg = write_config({"trading": {"assets": ["BTC/USDT"]}, "database": {"url": "embedded"},
                        "exchange": {"api_urls": {"public": exchange.api_url}}})
    backfill = _cli("backfill", "--days", "60", "--config", str(cfg))
    _wait_for(lambda: len(exchange.state.requests) >= 4, 120, "backfill to be fetching")
    _pg_ctl(tmp_path / "data", "stop")
    exchange.state.faults.clear()
    assert backfill.wait(timeout=120) == 1
    stderr = backfill.stderr.read()
    # ours are "error: <what>"; pgserver's own multi-line log of its failed stop at exit (the server is already
    # gone) holds a bare "error:" line, seen under load
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "database stopped answering" in lines[0], stderr


@pytest.mark.host_tz
def test_an_unexpected_job_failure_is_logged_with_its_traceback(ops, write_config, caplog):
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    daemon = Daemon(Context(Config(write_config({"database": {"url": ops.db.database_url}}))))

    def broken() -> dict:
        return {"n": 1 // 0}
    with caplog.at_level(logging.ERROR):
        daemon.run_job("broken", broken)
    # a record's traceback is in exc_info, or, once the product's SecretFilter has redacted it (setup_logging ran
    # earlier in this worker: root's handlers carry the filter), in exc_text alone: which depends on test order
    tracebacks = [r for r in caplog.records if r.levelno == logging.ERROR and (r.exc_info or r.exc_text)]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    text = tracebacks[0].exc_text or logging.Formatter().formatException(tracebacks[0].exc_info)
    assert text.startswith("Traceback (most recent call last)") and "ZeroDivisionError" in text.splitlines()[-1]
    assert daemon.board.jobs["broken"].last_error.startswith("ZeroDivisionError")
