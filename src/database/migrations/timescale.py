"""TimescaleDB steps used by migrations: hypertables and candle compression when the extension is there.

The mode comes from database.timescaledb (auto | on | off) through the Alembic config attributes.
"""
import logging

from alembic import context, op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from src.utils.errors import UserError

log = logging.getLogger("src.database.migrations")
CHUNK_INTERVAL = "30 days"  # ~720 hourly candles per asset per chunk: small chunks, few of them
NOT_PRELOADED = ("TimescaleDB is installed in this server but not preloaded: add timescaledb to "
                 "shared_preload_libraries in postgresql.conf (timescaledb-tune does it) and restart the server; "
                 "init-db then converts the tables")


def is_hypertable(bind, table: str) -> bool:
    """Whether `table` is a TimescaleDB hypertable here (False without the extension)."""
    if not bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
        return False
    return bool(bind.execute(text("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = :t"),
                             {"t": table}).scalar())


def not_preloaded(bind) -> bool:
    """True when the timescaledb extension is installed but its library is not preloaded: CREATE EXTENSION
    would end the connection there. Told from the settings when this role may read them (a plain role on a
    managed server may not: False, and the extension is tried as before)."""
    if not bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar():
        return False
    setting = bind.execute(text("SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'")).scalar()
    return setting is not None and "timescaledb" not in setting


def timescaledb_usable(bind) -> bool:
    """Whether this migration run should use TimescaleDB; raises when mode is 'on' and it cannot.
    Told from the catalog, never from superuser-only settings, so a plain role on a managed server can
    migrate: the extension already created (as managed services do), or created here when allowed."""
    mode = context.config.attributes.get("timescaledb", "auto")
    if mode == "off":
        return False
    if bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
        return True
    reason = "the server has no timescaledb extension"
    if not_preloaded(bind):
        reason = NOT_PRELOADED
    elif bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar():
        try:
            with bind.begin_nested():  # a savepoint: a refusal leaves the migration's transaction usable
                bind.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            return True
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if mode == "on" and reason == NOT_PRELOADED:
        raise UserError(f"database.timescaledb is 'on' but {reason[0].lower()}{reason[1:]}; or set "
                        "database.timescaledb: auto to build on plain PostgreSQL meanwhile")
    if mode == "on":
        raise UserError(f"database.timescaledb is 'on' but TimescaleDB cannot be used ({reason}); have a "
                        "superuser run CREATE EXTENSION timescaledb, or set database.timescaledb: auto")
    log.log(logging.WARNING if reason == NOT_PRELOADED else logging.INFO, "TimescaleDB not used: %s", reason)
    return False


def hypertable_statements(compress_after_days: int) -> list[str]:
    """The SQL that makes ohlcv_data and feature_cache hypertables (existing rows moved into chunks) and
    compresses older candles: run by the first migration, or by init-db on a schema built before
    TimescaleDB was installed."""
    statements = ["CREATE EXTENSION IF NOT EXISTS timescaledb"]
    statements += [f"SELECT create_hypertable('{table}', by_range('timestamp', INTERVAL '{CHUNK_INTERVAL}'), "
                   "migrate_data => true)" for table in ("ohlcv_data", "feature_cache")]
    return statements + [
        "ALTER TABLE ohlcv_data SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol, timeframe', "
        "timescaledb.compress_orderby = 'timestamp')",
        f"SELECT add_compression_policy('ohlcv_data', INTERVAL '{int(compress_after_days)} days')"]


def enable_hypertables() -> None:
    bind = op.get_bind()
    if not timescaledb_usable(bind):
        log.info("schema built on plain PostgreSQL (no TimescaleDB)")
        return
    for statement in hypertable_statements(int(context.config.attributes.get("compress_after_days", 30))):
        op.execute(statement)
    version = bind.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
    log.info("schema built on TimescaleDB %s: ohlcv_data and feature_cache are hypertables", version)
