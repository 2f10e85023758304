"""TimescaleDB steps used by migrations: hypertables and candle compression when the extension is there.

The mode comes from database.timescaledb (auto | on | off) through the Alembic config attributes.
"""
import logging

from alembic import context, op
from sqlalchemy import text

log = logging.getLogger("src.database.migrations")
CHUNK_INTERVAL = "30 days"  # ~720 hourly candles per asset per chunk: small chunks, few of them


def timescaledb_usable(bind) -> bool:
    """Whether this migration run should use TimescaleDB; raises when mode is 'on' and it cannot."""
    mode = context.config.attributes.get("timescaledb", "auto")
    if mode == "off":
        return False
    installed = bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
    available = bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar()
    preloaded = "timescaledb" in bind.execute(text("SHOW shared_preload_libraries")).scalar()
    usable = bool(installed or (available and preloaded))
    if mode == "on" and not usable:
        raise RuntimeError("database.timescaledb is 'on' but the server has no preloaded timescaledb extension; "
                           "use the timescale/timescaledb image or set database.timescaledb: auto")
    return usable


def enable_hypertables() -> None:
    bind = op.get_bind()
    if not timescaledb_usable(bind):
        log.info("schema built on plain PostgreSQL (no TimescaleDB)")
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table in ("ohlcv_data", "feature_cache"):
        op.execute(f"SELECT create_hypertable('{table}', by_range('timestamp', INTERVAL '{CHUNK_INTERVAL}'), "
                   "migrate_data => true)")
    days = int(context.config.attributes.get("compress_after_days", 30))
    op.execute("ALTER TABLE ohlcv_data SET (timescaledb.compress, "
               "timescaledb.compress_segmentby = 'symbol, timeframe', "
               "timescaledb.compress_orderby = 'timestamp')")
    op.execute(f"SELECT add_compression_policy('ohlcv_data', INTERVAL '{days} days')")
    version = bind.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
    log.info("schema built on TimescaleDB %s: ohlcv_data and feature_cache are hypertables", version)
