"""Schema: migrations up, down and up again on plain PostgreSQL and on TimescaleDB; init.sql agrees."""
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from src.database.connection import DatabaseConnection
from src.database.embedded import create_database, timescaledb_installed
from src.database.records import RecordStore
from src.database.schema import metadata
from src.utils.errors import UserError
from tests.conftest import raw_connect

ROOT = Path(__file__).resolve().parents[1]
SEED_TABLES = {"ohlcv_data", "feature_cache", "predictions", "prediction_outcomes", "model_performance",
               "telegram_reports", "system_health"}
needs_timescaledb = pytest.mark.skipif(not timescaledb_installed(),
                                       reason="TimescaleDB not built into pgserver (.ci/run builds it)")


def _tables(conn: DatabaseConnection) -> set[str]:
    with conn.engine.connect() as c:
        return set(c.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())


def _hypertables(conn: DatabaseConnection) -> set[str]:
    with conn.engine.connect() as c:
        if not c.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
            return set()
        return set(c.execute(text("SELECT hypertable_name FROM timescaledb_information.hypertables")).scalars())


@pytest.mark.parametrize("mode", ["off", pytest.param("on", marks=needs_timescaledb)])
def test_up_down_up(empty_db_url, mode):
    conn = DatabaseConnection(empty_db_url, timescaledb=mode)
    conn.create_tables()
    conn.create_tables()  # idempotent
    assert SEED_TABLES | {"exchange_gaps", "model_registry", "alembic_version"} <= _tables(conn)
    assert conn.schema_revision() == "0013"
    expected = {"ohlcv_data", "feature_cache"} if mode == "on" else set()
    assert _hypertables(conn) == expected
    conn.migrate("base", downgrade=True)
    assert _tables(conn) <= {"alembic_version"}
    conn.migrate("head")
    assert _hypertables(conn) == expected
    with conn.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM pg_matviews WHERE matviewname = 'recent_ohlcv'")).scalar() == 1
    conn.dispose()


@needs_timescaledb
def test_timescaledb_compression_policy_and_upsert(db, ops):
    with db.engine.connect() as c:
        jobs = c.execute(text("SELECT hypertable_name, proc_name FROM timescaledb_information.jobs "
                              "WHERE proc_name = 'policy_compression'")).all()
        assert [tuple(j) for j in jobs] == [("ohlcv_data", "policy_compression")]
    candle = [1_700_000_000_000 // 3_600_000 * 3_600_000, 100.0, 101.0, 99.0, 100.5, 3.0]
    assert ops.save_ohlcv_data("BTC/USDT", "1h", [candle]) == 1
    assert ops.save_ohlcv_data("BTC/USDT", "1h", [candle]) == 0
    assert ops.save_ohlcv_data("BTC/USDT", "1h", [candle[:4] + [100.7, 3.0]]) == 1  # corrected close
    assert ops.get_latest_candles("BTC/USDT").iloc[0]["close"] == 100.7


def test_metadata_matches_migrations(db):
    with db.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    # create_hypertable adds its own time index to each hypertable; everything else must agree
    auto = {f"{table}_timestamp_idx" for table in _hypertables(db)}
    assert [d for d in diff if not (d[0] == "remove_index" and d[1].name in auto)] == []


def _describe(url: str) -> dict:
    """Tables -> columns (type, nullable) plus primary/unique keys, from the catalog."""
    with raw_connect(url) as conn, conn.cursor() as cur:
        cur.execute("""SELECT table_name, column_name, data_type, numeric_precision, numeric_scale,
                              character_maximum_length, is_nullable
                       FROM information_schema.columns WHERE table_schema = 'public'""")
        columns = {(r[0], r[1]): r[2:] for r in cur.fetchall()}
        cur.execute("""SELECT tc.table_name, tc.constraint_type,
                              string_agg(k.column_name, ',' ORDER BY k.ordinal_position)
                       FROM information_schema.table_constraints tc
                       JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)
                       WHERE tc.table_schema = 'public'
                       GROUP BY tc.table_name, tc.constraint_name, tc.constraint_type""")
        keys = sorted(cur.fetchall())
        cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")
        indexes = sorted(r[0].split(" USING ")[-1] + r[0].split(" ON ")[1].split(" ")[1] for r in cur.fetchall())
    return {"columns": columns, "keys": keys, "indexes": indexes}


@needs_timescaledb
def test_init_sql_builds_the_same_schema(db, pg_admin_url):
    create_database(pg_admin_url.replace("+psycopg2", ""), "from_init_sql")
    init_url = pg_admin_url.replace("/postgres?", "/from_init_sql?", 1)
    with raw_connect(init_url) as conn, conn.cursor() as cur:
        cur.execute((ROOT / "sql" / "init.sql").read_text())
    assert _describe(init_url) == _describe(db.database_url)
    assert DatabaseConnection(init_url).schema_revision() == "0013"
    assert _hypertables(DatabaseConnection(init_url)) == {"ohlcv_data", "feature_cache"}


@pytest.mark.host_tz
def test_init_db_twice_and_status(run_cli, write_config, empty_db_url):
    path = write_config({"database": {"url": empty_db_url}})
    for _ in range(2):
        result = run_cli("init-db", "--config", str(path))
        assert result.returncode == 0, result.stderr
        assert "schema at revision 0013" in result.stdout
    status = run_cli("status", "--config", str(path))
    assert status.returncode == 0, status.stderr
    assert "schema:      0013" in status.stdout
    assert "BTC/USDT" in status.stdout


@pytest.mark.host_tz
def test_unreachable_database_is_one_line(run_cli, write_config):
    path = write_config({"database": {"url": "postgresql://crypto_user:hunter2@127.0.0.1:1/crypto_ml"}})
    result = run_cli("status", "--config", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1/crypto_ml is unreachable" in lines[0]
    assert "hunter2" not in result.stderr + result.stdout


def test_unwritable_data_folder_is_named(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(UserError, match=str(blocked)):
        DatabaseConnection("embedded", data_dir=blocked / "data")


def test_failed_migration_leaves_database_as_it_was(empty_db_url):
    conn = DatabaseConnection(empty_db_url)
    with conn.engine.begin() as c:  # a table in the way makes revision 0002 fail half-way
        c.execute(text("CREATE TABLE model_registry (x int)"))
    with pytest.raises(ProgrammingError, match="already exists"):
        conn.create_tables()
    assert _tables(conn) == {"model_registry"}
    assert conn.schema_revision() is None


@pytest.mark.host_tz
@needs_timescaledb
def test_init_db_converts_a_plain_schema_once_timescaledb_is_available(run_cli, write_config, empty_db_url):
    """A database built while TimescaleDB was off (or not installed) keeps its rows and becomes hypertables at
    the next init-db; a third run has nothing to do."""
    from src.database.operations import DatabaseOperations
    plain = DatabaseConnection(empty_db_url, timescaledb="off")
    plain.create_tables()
    DatabaseOperations(plain).save_ohlcv_data("BTC/USDT", "1h", [[1677628800000 + i * 3_600_000, 1, 2, 0.5, 1.5, 3]
                                                                  for i in range(50)])
    assert _hypertables(plain) == set()
    path = write_config({"database": {"url": empty_db_url, "timescaledb": "auto"}})
    result = run_cli("init-db", "--config", str(path))
    assert result.returncode == 0 and "converted to hypertables" in result.stdout, result.stdout + result.stderr
    converted = DatabaseConnection(empty_db_url)
    assert _hypertables(converted) == {"ohlcv_data", "feature_cache"}
    assert DatabaseOperations(converted).get_candle_count("BTC/USDT") == 50
    again = run_cli("init-db", "--config", str(path))
    assert again.returncode == 0 and "converted" not in again.stdout


def test_stored_backtest_champion_copies_become_the_flag_and_back(empty_db_url):
    """0005: a backtest's 'champion' pseudo-model rows (and their outcomes) become is_champion on the row of
    the model they copied; the downgrade restores them."""
    conn = DatabaseConnection(empty_db_url, timescaledb="off")
    conn.migrate("0004")
    key = "'backtest', 'BTC/USDT', '1h', '2023-01-01 05:00+00', 0.02"
    with conn.engine.begin() as c:
        for name, version, flag, p in (("xgboost", "backtest-20230101", False, 0.61),
                                       ("logistic", "backtest-20230101", False, 0.55),
                                       ("champion", "backtest-20230101-logistic", True, 0.55)):
            pid = c.execute(text(f"""INSERT INTO predictions (run_type, symbol, timeframe, timestamp, target_pct,
                model_name, model_version, feature_version, is_champion, prediction_class, probability, confidence,
                entry_price) VALUES ({key}, '{name}', '{version}', 'v', {flag}, 1, {p}, {p}, 100) RETURNING id""")
                            ).scalar()
            c.execute(text(f"INSERT INTO prediction_outcomes (prediction_id, status, actual_outcome) "
                           f"VALUES ({pid}, 'up', 1)"))
        for name, version, flag in (("climatology", "backtest-20230101", False),
                                    ("vol_logistic", "backtest-20230101", False),
                                    ("champion", "backtest-20230101-vol_logistic", True)):
            c.execute(text(f"""INSERT INTO resolution_forecasts (run_type, symbol, timeframe, timestamp, target_pct,
                model_name, model_version, is_champion, p_6h, p_24h, p_horizon, q10_hours, q50_hours, q90_hours,
                status, hours_to_resolution) VALUES ({key}, '{name}', '{version}', {flag}, 0.1, 0.5, 0.9, 3, 20,
                150, 'up', 7)"""))

    def rows(table: str) -> set:
        with conn.engine.connect() as c:
            return set(c.execute(text(f"SELECT model_name, is_champion FROM {table}")).all())

    for version, path in (("BTCUSDT-0.02-xgboost-2023010100-abcdef", "/old/data/models/"), ("elsewhere", "/x/y")):
        RecordStore(conn).add_model({
            "symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.02, "model_name": "xgboost", "version": version,
            "feature_version": "v", "path": path + (version if path.endswith("/") else ""), "checksum": "0",
            "train_start": "2022-01-01", "train_end": "2023-01-01", "n_samples": 1, "metrics": {},
            "library_versions": {}})
    conn.migrate("head")
    with conn.engine.connect() as c:  # 0006: paths relative to the models folder where they were inside it
        assert dict(c.execute(text("SELECT version, path FROM model_registry")).all()) == {
            "BTCUSDT-0.02-xgboost-2023010100-abcdef": "BTCUSDT-0.02-xgboost-2023010100-abcdef",
            "elsewhere": "/x/y"}
    assert rows("predictions") == {("xgboost", False), ("logistic", True)}
    assert rows("resolution_forecasts") == {("climatology", False), ("vol_logistic", True)}
    with conn.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM prediction_outcomes")).scalar() == 2
    conn.migrate("0004", downgrade=True)
    assert rows("predictions") == {("xgboost", False), ("logistic", False), ("champion", True)}
    assert rows("resolution_forecasts") == {("climatology", False), ("vol_logistic", False), ("champion", True)}
    with conn.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM prediction_outcomes")).scalar() == 3
    conn.dispose()


@pytest.mark.host_tz
@needs_timescaledb
def test_timescaledb_installed_but_not_preloaded_builds_plain_and_says_how(run_cli, write_config, tmp_path):
    """The state right after installing the package without its tuning step: CREATE EXTENSION would end the
    connection there (init-db failed with PendingRollbackError). Told from the settings before trying: the
    schema is built on plain PostgreSQL with one line on how to preload; with timescaledb: on, a clear error."""
    from src.database.embedded import start_embedded
    from tests.conftest import pg_ctl
    admin = start_embedded(tmp_path / "pg", database="postgres", timescaledb=False)
    try:
        create_database(admin.replace("+psycopg2", ""), "unloaded")
        url = admin.replace("/postgres?", "/unloaded?", 1)
        result = run_cli("init-db", "--config", str(write_config({"database": {"url": url}})))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "on plain PostgreSQL" in result.stdout and "shared_preload_libraries" in result.stdout
        assert DatabaseConnection(url).schema_revision() == "0013" and not DatabaseConnection(url).has_timescaledb()
        create_database(admin.replace("+psycopg2", ""), "required")
        required = write_config({"database": {"url": admin.replace("/postgres?", "/required?", 1),
                                              "timescaledb": "on"}}, name="on.yaml")
        result = run_cli("init-db", "--config", str(required))
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "shared_preload_libraries" in result.stderr and "PendingRollback" not in result.stderr
    finally:
        pg_ctl(tmp_path / "pg" / "postgres", "-m", "immediate", "-w", "stop")
