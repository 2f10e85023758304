"""One meaning for "what users got": backtest forecasts flag the champion's own row is_champion, as live
forecasts always did, instead of storing it again as a pseudo-model named 'champion'. Stored backtests are
migrated: the row of the model the 'champion' row copied (its version ends with that model's name) is
flagged, and the copy is deleted with its outcome. Scores keep a 'champion' series, computed from the flag.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('predictions', 'resolution_forecasts')
KEY = ('run_type', 'symbol', 'timeframe', 'timestamp', 'target_pct')


def upgrade() -> None:
    for table in TABLES:
        same_hour = ' AND '.join(f'm.{c} = c.{c}' for c in KEY)
        # a backtest champion copy is versioned 'backtest-YYYYMMDD-<model>'
        op.execute(f"""
            UPDATE {table} m SET is_champion = true FROM {table} c
            WHERE c.run_type = 'backtest' AND c.model_name = 'champion' AND {same_hour}
              AND m.model_name = split_part(c.model_version, '-', 3)""")
        op.execute(f"DELETE FROM {table} WHERE run_type = 'backtest' AND model_name = 'champion'")


def downgrade() -> None:
    op.execute("""
        INSERT INTO predictions (run_type, symbol, timeframe, timestamp, target_pct, model_name, model_version,
            feature_version, is_champion, prediction_class, probability, confidence, entry_price)
        SELECT run_type, symbol, timeframe, timestamp, target_pct, 'champion', model_version || '-' || model_name,
            feature_version, true, prediction_class, probability, confidence, entry_price
        FROM predictions WHERE run_type = 'backtest' AND is_champion""")
    op.execute("""
        INSERT INTO prediction_outcomes (prediction_id, status, actual_outcome, target_hit_timestamp,
            time_to_target_hours, max_favorable_move, max_adverse_move)
        SELECT c.id, o.status, o.actual_outcome, o.target_hit_timestamp, o.time_to_target_hours,
            o.max_favorable_move, o.max_adverse_move
        FROM predictions c JOIN predictions m ON m.run_type = c.run_type AND m.symbol = c.symbol
          AND m.timeframe = c.timeframe AND m.timestamp = c.timestamp AND m.target_pct = c.target_pct
          AND m.is_champion AND m.model_name <> 'champion'
        JOIN prediction_outcomes o ON o.prediction_id = m.id
        WHERE c.run_type = 'backtest' AND c.model_name = 'champion'""")
    op.execute("""
        INSERT INTO resolution_forecasts (run_type, symbol, timeframe, timestamp, target_pct, model_name,
            model_version, is_champion, p_6h, p_24h, p_horizon, q10_hours, q50_hours, q90_hours, status,
            hours_to_resolution)
        SELECT run_type, symbol, timeframe, timestamp, target_pct, 'champion', model_version || '-' || model_name,
            true, p_6h, p_24h, p_horizon, q10_hours, q50_hours, q90_hours, status, hours_to_resolution
        FROM resolution_forecasts WHERE run_type = 'backtest' AND is_champion""")
    for table in TABLES:
        op.execute(f"UPDATE {table} SET is_champion = false WHERE run_type = 'backtest' AND is_champion "
                   "AND model_name <> 'champion'")
