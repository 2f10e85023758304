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

import psutil
import psycopg2
from psycopg2 import sql

from src.utils.errors import UserError

log = logging.getLogger(__name__)
DATABASE_NAME = "crypto_ml"
CREATE_DATABASE_LOCK = 0x63726D64  # "crmd": the advisory lock key of database creation
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
    """Preload timescaledb in this data folder and restart the server once, if not done yet. Checked and
    done under pgserver's lock, so processes starting at once restart it once, before any of them connects."""
    from pgserver import _commands
    conf = server.pgdata / "postgresql.conf"
    with server._lock:
        if "shared_preload_libraries = 'timescaledb'" in conf.read_text():
            return
        log.info("enabling TimescaleDB in the embedded server (one restart)")
        with conf.open("a") as handle:
            handle.write(_PRELOAD_LINES)
        _commands.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()


def _use_utc(server) -> None:
    """Set the server's default and log time zones to UTC (once per data folder), then reload."""
    from pgserver import _commands
    conf = server.pgdata / "postgresql.conf"
    with server._lock:
        if _UTC_LINES.strip().splitlines()[-1] in conf.read_text():
            return
        with conf.open("a") as handle:
            handle.write(_UTC_LINES)
        _commands.pg_ctl(["reload"], pgdata=server.pgdata, user=server.system_user)


def _prune_dead_users(pgdata: Path) -> None:
    """Drop from pgserver's list of processes using the server those no longer alive (killed, or stopped
    without running their exit handlers), so the last live user still stops the server when it exits."""
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with PostgresServer._lock:
        users = DiskList(handles)
        try:
            listed = users.get()
        except ValueError:  # a list cut short by a process killed while writing it: nobody known to use it
            log.warning("embedded server: its user list %s was unreadable; starting it afresh", handles)
            users.put([])
            return
        alive = [pid for pid in listed if psutil.pid_exists(pid)]
        if alive != listed:
            users.put(alive)
            log.info("embedded server: dropped %d dead processes from its user list", len(listed) - len(alive))


def _refresh_postmaster(server) -> None:
    """Before pgserver's exit clean-up: point it at the server running now (it may have been restarted under
    us), or at none when the server was stopped under us, so it neither leaves one running nor fails
    loudly stopping one that is gone."""
    from pgserver.utils import PostmasterInfo
    info = PostmasterInfo.read_from_pgdata(server.pgdata)
    server._postmaster_info = info if info is not None and info.is_running() else None


_STARTED: dict[Path, object] = {}  # data folder -> the pgserver handle this process holds


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server under data_dir now (fast shutdown: sessions end, nothing is lost), for a
    throwaway folder that is about to be deleted; the exit handler then has nothing left to stop."""
    from pgserver import _commands
    server = _STARTED.pop(data_dir, None)
    if server is None:
        return
    try:
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    except subprocess.SubprocessError as exc:
        log.warning("embedded server under %s did not stop: %s", data_dir, exc)
    _refresh_postmaster(server)


def start_embedded(data_dir: Path, database: str = DATABASE_NAME, timescaledb: bool = True) -> str:
    """Start (or join) the embedded server under data_dir/postgres; return a SQLAlchemy URL to `database`."""
    _check_writable(data_dir)
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            import pgserver
        _prune_dead_users(data_dir / "postgres")
        server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
        atexit.register(_refresh_postmaster, server)  # runs before pgserver's own stop (atexit is LIFO)
        _STARTED[data_dir] = server
        _use_utc(server)
        if timescaledb and timescaledb_installed():
            _enable_timescaledb(server)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise UserError(f"embedded PostgreSQL under {data_dir / 'postgres'} did not start ({exc}); "
                        f"see {data_dir / 'postgres' / 'log'}") from None
    create_database(server.get_uri(), database)
    return _sqlalchemy_url(server.get_uri(database))


def create_database(admin_uri: str, database: str) -> None:
    """CREATE DATABASE if missing. Processes starting at once take turns (an advisory lock): two concurrent
    CREATE DATABASE of one name can fail on the catalog's unique index rather than as a duplicate."""
    conn = psycopg2.connect(admin_uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (CREATE_DATABASE_LOCK,))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                log.info("created database %s", database)
            cur.execute("SELECT pg_advisory_unlock(%s)", (CREATE_DATABASE_LOCK,))
    finally:
        conn.close()


def _sqlalchemy_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)
