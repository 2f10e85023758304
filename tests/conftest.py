"""Shared fixtures: one embedded PostgreSQL (with TimescaleDB when built in) for the whole session, a fresh
migrated database per test, trained models per test, and a loopback exchange. Nothing of our own code is
mocked.

What is expensive is done once per run and copied per test: the migrations run once into a template
database, and `trained` trains once into another; each test gets its own copy (CREATE DATABASE ... TEMPLATE,
and the model files), so tests stay independent and may write what they like."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg2
import pytest
import yaml

from src.database.connection import DatabaseConnection
from src.database.embedded import create_database, start_embedded
from src.database.operations import DatabaseOperations
from tests.loopback_exchange import LoopbackExchange

ROOT = Path(__file__).resolve().parents[1]
_counter = itertools.count()


def pg_ctl(pgdata: Path, *args: str) -> None:
    """pgserver's pg_ctl on a data folder, as the user pgserver runs PostgreSQL as."""
    from pgserver import _commands
    _commands.pg_ctl(list(args), pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None, timeout=60)


# CI builds TimescaleDB into the embedded PostgreSQL and sets this: a test skipped for its absence then fails, so
# the hypertable path can never pass by not running
TIMESCALEDB_REQUIRED = os.environ.get("CRYPTO_ML_REQUIRE_TIMESCALEDB") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and TIMESCALEDB_REQUIRED and "TimescaleDB" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"skipped for want of TimescaleDB, which CRYPTO_ML_REQUIRE_TIMESCALEDB=1 requires: " \
                          f"{report.longrepr}"


PRODUCT_DATABASE = ROOT / "data" / "postgres"  # where the product's own embedded database lives (config.yaml)


@pytest.fixture(autouse=True)
def _product_database_left_alone(request):
    """No test may start a database in the clone's data/ (the user's own, by the repository's config.yaml): on a
    fresh clone, one that appears during a test fails that test."""
    existed = PRODUCT_DATABASE.exists()
    yield
    if not existed and PRODUCT_DATABASE.exists():
        pytest.fail(f"{request.node.nodeid} created {PRODUCT_DATABASE}: give it a config of its own "
                    "(write_config) or a database fixture", pytrace=False)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> str:
    """URL (SQLAlchemy form) of the session's embedded server, database 'postgres'."""
    data_dir = tmp_path_factory.mktemp("pg")
    url = start_embedded(data_dir, database="postgres")
    # every test copies a database (WAL_LOG copies pass through the WAL): keep the WAL small, or a worker's
    # server holds a gigabyte of it on a machine that may have little disk
    _admin_execute(url, "ALTER SYSTEM SET max_wal_size = '96MB'", "ALTER SYSTEM SET min_wal_size = '32MB'",
                   "SELECT pg_reload_conf()")
    yield url
    # throwaway data: stop at once, not after a shutdown checkpoint of every test database (over a minute
    # on a loaded machine)
    pg_ctl(data_dir / "postgres", "-m", "immediate", "-w", "stop")


def _db_url(admin_url: str, name: str) -> str:
    return admin_url.replace("/postgres?", f"/{name}?", 1)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a test's own database when the test is done: a run would otherwise keep every copy (up to 90 MB
    each, gigabytes a run). Sessions a test left open (a daemon it killed) are ended with it."""
    name = url.split("?", 1)[0].rsplit("/", 1)[1]
    try:
        _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg2.Error as exc:  # cleaning up must not fail a test; the folder goes with the run
        warnings.warn(f"test database {name} not dropped: {exc}", stacklevel=1)


@pytest.fixture
def empty_db_url(pg_admin_url) -> str:
    """A new, empty database on the session server, dropped after the test."""
    name = f"t{os.getpid()}_{next(_counter)}"
    create_database(pg_admin_url.replace("+psycopg2", ""), name)
    url = _db_url(pg_admin_url, name)
    yield url
    drop_database(pg_admin_url, url)


def _seal_template(admin_url: str, name: str) -> None:
    """Make a prepared database a template nobody connects to (TimescaleDB's background workers included):
    a copy can only be taken of a database without sessions."""
    _admin_execute(admin_url, f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false',
                   f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def _admin_execute(admin_url: str, *statements: str) -> None:
    """Statements outside a transaction (CREATE DATABASE refuses one) on the server's admin database."""
    conn = raw_connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def copy_database(admin_url: str, template: str, name: str | None = None) -> str:
    """A new database copied from `template`; returns its URL."""
    name = name or f"t{os.getpid()}_{next(_counter)}"
    _admin_execute(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return _db_url(admin_url, name)


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url) -> str:
    """The name of a migrated, empty database (TimescaleDB when available): the migrations run once a run."""
    name = "template_migrated"
    create_database(pg_admin_url.replace("+psycopg2", ""), name)
    conn = DatabaseConnection(_db_url(pg_admin_url, name))
    conn.create_tables()
    conn.dispose()
    _seal_template(pg_admin_url, name)
    return name


@pytest.fixture
def db(pg_admin_url, migrated_template) -> DatabaseConnection:
    """A migrated database of this test's own (a copy of the migrated template)."""
    conn = DatabaseConnection(copy_database(pg_admin_url, migrated_template))
    yield conn
    conn.dispose()
    drop_database(pg_admin_url, conn.database_url)


def build_template(admin_url: str, base: str, name: str, fill) -> str:
    """A template database `name`: a copy of `base`, filled by `fill(connection)`, sealed; returns its name."""
    conn = DatabaseConnection(copy_database(admin_url, base, name))
    try:
        fill(conn)
    finally:
        conn.dispose()
    _seal_template(admin_url, name)
    return name


@pytest.fixture(scope="session")
def btc_year_template(pg_admin_url, migrated_template) -> str:
    """A database with BTC's real candles of 2022-01-01 .. 2023-01-31: written once a run."""
    from tests.shared_data import load_candles
    return build_template(pg_admin_url, migrated_template, "template_btc_year", lambda conn: DatabaseOperations(
        conn).save_ohlcv_data("BTC/USDT", "1h", load_candles("BTC_USDT", "2022-01-01", "2023-01-31 23:00")))


@pytest.fixture
def btc_year(pg_admin_url, btc_year_template) -> DatabaseOperations:
    """This test's own database with a year of BTC candles (2022-01-01 .. 2023-01-31)."""
    conn = DatabaseConnection(copy_database(pg_admin_url, btc_year_template))
    yield DatabaseOperations(conn)
    conn.dispose()
    drop_database(pg_admin_url, conn.database_url)


@pytest.fixture(scope="session")
def site_template(pg_admin_url, migrated_template) -> str:
    """The web tests' stored record (tests/stored_site.py): written once a run."""
    from tests.stored_site import fill_site
    return build_template(pg_admin_url, migrated_template, "template_web_site", fill_site)


@pytest.fixture
def site_db(pg_admin_url, site_template) -> DatabaseConnection:
    """This test's own copy of the web tests' stored record."""
    conn = DatabaseConnection(copy_database(pg_admin_url, site_template))
    yield conn
    conn.dispose()
    drop_database(pg_admin_url, conn.database_url)


TRAINED_TARGETS = [0.01, 0.05]
TRAINED_CUT = "2023-01-15"  # models trained on BTC and ETH candles of 2022-03-01 .. 2023-02-28, labels known by then


@pytest.fixture(scope="session")
def trained_template(pg_admin_url, migrated_template, tmp_path_factory) -> tuple[str, Path]:
    """A database with a year of BTC and ETH candles and models trained for TRAINED_TARGETS at TRAINED_CUT
    (one validation fold of 60 days), and its models folder: trained once a run."""
    import pandas as pd

    from src.database.records import RecordStore
    from src.models.live.registry import ModelRegistry
    from src.models.offline.training import Trainer, TrainSettings
    from tests.shared_data import load_candles
    models = tmp_path_factory.mktemp("trained") / "models"

    def fill(conn: DatabaseConnection) -> None:
        ops = DatabaseOperations(conn)
        for asset in ("BTC_USDT", "ETH_USDT"):
            ops.save_ohlcv_data(asset.replace("_", "/"), "1h", load_candles(asset, "2022-03-01", "2023-02-28 23:00"))
        records = RecordStore(conn)
        Trainer(ops, records, ModelRegistry(records, models), TrainSettings(n_folds=1, fold_days=60)).train(
            ["BTC/USDT", "ETH/USDT"], TRAINED_TARGETS, cut=pd.Timestamp(TRAINED_CUT, tz="UTC"))
    return build_template(pg_admin_url, migrated_template, "template_trained", fill), models


@pytest.fixture
def trained(pg_admin_url, trained_template, tmp_path):
    """(ops, records, registry) on this test's own copy of the trained database and of its model files."""
    from src.database.records import RecordStore
    from src.models.live.registry import ModelRegistry
    name, models = trained_template
    shutil.copytree(models, tmp_path / "models")
    conn = DatabaseConnection(copy_database(pg_admin_url, name))
    records = RecordStore(conn)
    yield DatabaseOperations(conn), records, ModelRegistry(records, tmp_path / "models")
    conn.dispose()
    drop_database(pg_admin_url, conn.database_url)


@pytest.fixture
def ops(db) -> DatabaseOperations:
    return DatabaseOperations(db)


@pytest.fixture
def exchange():
    with LoopbackExchange() as server:
        yield server


def raw_connect(url: str):
    return psycopg2.connect(url.replace("+psycopg2", ""))


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML override file and return its path."""
    def write(tree: dict, name: str = "config.yaml") -> Path:
        tree = {**tree, "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs"),
                                  **tree.get("paths", {})}}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tree))
        return path
    return write


@pytest.fixture
def run_cli():
    """Run `python -m src.main ...` as a user would, in a clean environment."""
    def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "CRYPTO_ML_CONFIG")}
        return subprocess.run([sys.executable, "-m", "src.main", *args], cwd=ROOT, capture_output=True,
                              text=True, env={**base, **(env or {})}, timeout=timeout)
    return run


@pytest.fixture
def raw_connect_tables():
    def tables(url: str) -> set[str]:
        with raw_connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            return {row[0] for row in cur.fetchall()}
    return tables


@pytest.fixture
def loaded_exchange():
    """Fill a loopback exchange with the last `days` of real candles (ending 2023-03-31), newest open now."""
    import time as _time

    from tests.loopback_exchange import HOUR_MS, shifted_candles

    def load(server, days: int = 60, symbols=("BTC_USDT", "ETH_USDT", "SOL_USDT"), end="2023-03-31 23:00"):
        import pandas as pd
        newest = int(_time.time() * 1000) // HOUR_MS * HOUR_MS
        start = (pd.Timestamp(end) - pd.Timedelta(hours=days * 24)).isoformat()
        for name in symbols:
            server.state.candles[name.replace("_", "")] = shifted_candles(name, start, end, newest)
        return server
    return load
