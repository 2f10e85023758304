"""The embedded PostgreSQL server (PyPI pgserver): the default database, so a new user sets up nothing.

pgserver keeps one server per data folder and counts the processes using it; the server stops when the
last of them exits, so a CLI command run beside the daemon shares its server and never stops it.
When TimescaleDB is installed into pgserver's PostgreSQL (see shared/timescaledb), it is preloaded.
"""
from __future__ import annotations

import atexit
import logging
import os
import subprocess
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

from src.utils.errors import UserError

log = logging.getLogger(__name__)
DATABASE_NAME = "crypto_ml"
_PRELOAD_LINES = "\n# added by crypto-ml-predictor\nshared_preload_libraries = 'timescaledb'\n" \
                 "timescaledb.telemetry_level = off\n"
# initdb copies the host's TZ into postgresql.conf; the product's server runs in UTC whatever the host.
_UTC_LINES = "\n# added by crypto-ml-predictor: the server's own clock settings in UTC\n" \
             "timezone = 'UTC'\nlog_timezone = 'UTC'\n"


def timescaledb_installed() -> bool:
    """True when pgserver's PostgreSQL has the timescaledb extension files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import _commands
    share = _commands.POSTGRES_BIN_PATH.parent / "share" / "postgresql" / "extension"
    return (share / "timescaledb.control").exists()


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"data folder {folder} cannot be created ({exc.strerror}); "
                        "set paths.data_dir to a writable folder") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"data folder {folder} is not writable; fix its permissions or set paths.data_dir")


def _enable_timescaledb(server) -> None:
    """Preload timescaledb in this data folder and restart the server once, if not done yet."""
    from pgserver import _commands
    conf = server.pgdata / "postgresql.conf"
    if "shared_preload_libraries = 'timescaledb'" in conf.read_text():
        return
    log.info("enabling TimescaleDB in the embedded server (one restart)")
    with conf.open("a") as handle:
        handle.write(_PRELOAD_LINES)
    with server._lock:
        _commands.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()


def _use_utc(server) -> None:
    """Set the server's default and log time zones to UTC (once per data folder), then reload."""
    from pgserver import _commands
    conf = server.pgdata / "postgresql.conf"
    if _UTC_LINES.strip().splitlines()[-1] in conf.read_text():
        return
    with conf.open("a") as handle:
        handle.write(_UTC_LINES)
    _commands.pg_ctl(["reload"], pgdata=server.pgdata, user=server.system_user)


def _refresh_postmaster(server) -> None:
    """If the server was restarted under us, let pgserver's exit clean-up stop the running one."""
    from pgserver.utils import PostmasterInfo
    info = PostmasterInfo.read_from_pgdata(server.pgdata)
    if info is not None and info.is_running():
        server._postmaster_info = info


def start_embedded(data_dir: Path, database: str = DATABASE_NAME, timescaledb: bool = True) -> str:
    """Start (or join) the embedded server under data_dir/postgres; return a SQLAlchemy URL to `database`."""
    _check_writable(data_dir)
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            import pgserver
        server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
        atexit.register(_refresh_postmaster, server)  # runs before pgserver's own stop (atexit is LIFO)
        _use_utc(server)
        if timescaledb and timescaledb_installed():
            _enable_timescaledb(server)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise UserError(f"embedded PostgreSQL under {data_dir / 'postgres'} did not start ({exc}); "
                        f"see {data_dir / 'postgres' / 'log'}") from None
    create_database(server.get_uri(), database)
    return _sqlalchemy_url(server.get_uri(database))


def create_database(admin_uri: str, database: str) -> None:
    """CREATE DATABASE if missing (tolerates a concurrent creator)."""
    conn = psycopg2.connect(admin_uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                    log.info("created database %s", database)
                except psycopg2.errors.DuplicateDatabase:
                    pass
    finally:
        conn.close()


def _sqlalchemy_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)
