"""Shared fixtures: one embedded PostgreSQL (with TimescaleDB when built in) for the whole session, a fresh
migrated database per test, and a loopback exchange. Nothing of our own code is mocked."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
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


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> str:
    """URL (SQLAlchemy form) of the session's embedded server, database 'postgres'."""
    data_dir = tmp_path_factory.mktemp("pg")
    yield start_embedded(data_dir, database="postgres")
    # throwaway data: stop at once, not after a shutdown checkpoint of every test database (over a minute
    # on a loaded machine)
    pg_ctl(data_dir / "postgres", "-m", "immediate", "-w", "stop")


def _db_url(admin_url: str, name: str) -> str:
    return admin_url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture
def empty_db_url(pg_admin_url) -> str:
    """A new, empty database on the session server."""
    name = f"t{os.getpid()}_{next(_counter)}"
    create_database(pg_admin_url.replace("+psycopg2", ""), name)
    return _db_url(pg_admin_url, name)


@pytest.fixture
def db(empty_db_url) -> DatabaseConnection:
    """A migrated database (TimescaleDB when available)."""
    conn = DatabaseConnection(empty_db_url)
    conn.create_tables()
    yield conn
    conn.dispose()


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
