"""The seed's seven tables and the recent_ohlcv view, with the seed's faults fixed.

ohlcv_data and feature_cache become hypertables when TimescaleDB is available.

Revision ID: 0001
Revises: None
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from src.database.migrations.timescale import enable_hypertables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table('ohlcv_data',
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('open', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('high', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('low', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('close', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('volume', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('symbol', 'timeframe', 'timestamp')
    )
    op.create_table('feature_cache',
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('feature_version', sa.String(length=16), nullable=False),
    sa.Column('feature_set', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('symbol', 'timeframe', 'timestamp', 'feature_version')
    )
    op.create_table('predictions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_type', sa.String(length=10), server_default='live', nullable=False),
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('target_pct', sa.Numeric(precision=6, scale=4), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model_name', sa.String(length=50), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('feature_version', sa.String(length=16), nullable=False),
    sa.Column('is_champion', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('prediction_class', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Numeric(precision=7, scale=6), nullable=False),
    sa.Column('confidence', sa.Numeric(precision=7, scale=6), nullable=False),
    sa.Column('entry_price', sa.Numeric(precision=28, scale=10), nullable=False),
    sa.Column('features_used', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_type', 'symbol', 'timeframe', 'timestamp', 'target_pct', 'model_name', name='uq_predictions_run_symbol_tf_time_target_model')
    )
    op.create_index('idx_predictions_symbol_target_time', 'predictions', ['symbol', 'target_pct', sa.literal_column('timestamp DESC')], unique=False)
    op.create_table('prediction_outcomes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('prediction_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('actual_outcome', sa.Integer(), nullable=True),
    sa.Column('target_hit_timestamp', sa.DateTime(timezone=True), nullable=True),
    sa.Column('time_to_target_hours', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('max_favorable_move', sa.Numeric(precision=10, scale=6), nullable=True),
    sa.Column('max_adverse_move', sa.Numeric(precision=10, scale=6), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prediction_id')
    )
    op.create_table('model_performance',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_type', sa.String(length=10), server_default='live', nullable=False),
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('target_pct', sa.Numeric(precision=6, scale=4), nullable=False),
    sa.Column('model_name', sa.String(length=50), nullable=False),
    sa.Column('evaluation_date', sa.Date(), nullable=False),
    sa.Column('window_days', sa.Integer(), server_default='1', nullable=False),
    sa.Column('total_predictions', sa.Integer(), nullable=False),
    sa.Column('up_share', sa.Float(), nullable=True),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('precision_up', sa.Float(), nullable=True),
    sa.Column('precision_down', sa.Float(), nullable=True),
    sa.Column('recall_up', sa.Float(), nullable=True),
    sa.Column('recall_down', sa.Float(), nullable=True),
    sa.Column('f1_up', sa.Float(), nullable=True),
    sa.Column('f1_down', sa.Float(), nullable=True),
    sa.Column('auc', sa.Float(), nullable=True),
    sa.Column('brier', sa.Float(), nullable=True),
    sa.Column('brier_skill', sa.Float(), nullable=True),
    sa.Column('log_loss', sa.Float(), nullable=True),
    sa.Column('ece', sa.Float(), nullable=True),
    sa.Column('avg_time_to_target_hours', sa.Float(), nullable=True),
    sa.Column('hit_rate', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_type', 'symbol', 'timeframe', 'target_pct', 'model_name', 'evaluation_date', 'window_days', name='uq_model_performance_key')
    )
    op.create_table('telegram_reports',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('report_type', sa.String(length=20), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('success', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('system_health',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('memory_percent', sa.Float(), nullable=True),
    sa.Column('disk_percent', sa.Float(), nullable=True),
    sa.Column('process_rss_mb', sa.Float(), nullable=True),
    sa.Column('database_size_mb', sa.Float(), nullable=True),
    sa.Column('prediction_latency_ms', sa.Integer(), nullable=True),
    sa.Column('data_freshness_minutes', sa.Integer(), nullable=True),
    sa.Column('active_models', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_health_timestamp', 'system_health', [sa.literal_column('timestamp DESC')], unique=False)
    enable_hypertables()
    op.execute(
        "CREATE MATERIALIZED VIEW recent_ohlcv AS "
        "SELECT symbol, timeframe, timestamp, open, high, low, close, volume FROM ohlcv_data "
        "WHERE timestamp >= NOW() - INTERVAL '7 days' WITH DATA"
    )
    op.execute("CREATE UNIQUE INDEX idx_recent_ohlcv_unique ON recent_ohlcv (symbol, timeframe, timestamp)")


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW IF EXISTS recent_ohlcv")
    op.drop_table('system_health')
    op.drop_table('telegram_reports')
    op.drop_table('model_performance')
    op.drop_table('prediction_outcomes')
    op.drop_table('predictions')
    op.drop_table('feature_cache')
    op.drop_table('ohlcv_data')
