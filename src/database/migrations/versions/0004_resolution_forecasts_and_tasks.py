"""How soon: resolution_forecasts, a task column (direction | resolution) on model_registry and
model_performance (in their champion index and key), and the resolution-time metric columns.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TIME_METRICS = ('brier_skill_6h', 'brier_skill_24h', 'brier_skill_horizon', 'interval_coverage', 'pinball_skill')


def upgrade() -> None:
    op.create_table('resolution_forecasts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_type', sa.String(length=10), server_default='live', nullable=False),
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('target_pct', sa.Numeric(precision=6, scale=4), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model_name', sa.String(length=50), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('is_champion', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('p_6h', sa.Numeric(precision=7, scale=6), nullable=False),
    sa.Column('p_24h', sa.Numeric(precision=7, scale=6), nullable=False),
    sa.Column('p_horizon', sa.Numeric(precision=7, scale=6), nullable=False),
    sa.Column('q10_hours', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('q50_hours', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('q90_hours', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=True),
    sa.Column('hours_to_resolution', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_type', 'symbol', 'timeframe', 'timestamp', 'target_pct', 'model_name',
                        name='uq_resolution_forecasts_key')
    )
    op.create_index('idx_resolution_forecasts_symbol_target_time', 'resolution_forecasts',
                    ['symbol', 'target_pct', sa.text('timestamp DESC')], unique=False)
    op.add_column('model_registry', sa.Column('task', sa.String(length=12), server_default='direction',
                                              nullable=False))
    op.drop_index('uq_model_registry_one_champion', table_name='model_registry')
    op.create_index('uq_model_registry_one_champion', 'model_registry', ['symbol', 'timeframe', 'target_pct', 'task'],
                    unique=True, postgresql_where='is_champion')
    op.add_column('model_performance', sa.Column('task', sa.String(length=12), server_default='direction',
                                                 nullable=False))
    for name in TIME_METRICS:
        op.add_column('model_performance', sa.Column(name, sa.Float(), nullable=True))
    op.drop_constraint('uq_model_performance_key', 'model_performance', type_='unique')
    op.create_unique_constraint('uq_model_performance_key', 'model_performance',
                                ['run_type', 'symbol', 'timeframe', 'target_pct', 'task', 'model_name',
                                 'evaluation_date', 'window_days'])


def downgrade() -> None:
    op.execute("DELETE FROM model_performance WHERE task <> 'direction'")
    op.execute("DELETE FROM model_registry WHERE task <> 'direction'")
    op.drop_constraint('uq_model_performance_key', 'model_performance', type_='unique')
    op.create_unique_constraint('uq_model_performance_key', 'model_performance',
                                ['run_type', 'symbol', 'timeframe', 'target_pct', 'model_name', 'evaluation_date',
                                 'window_days'])
    for name in reversed(TIME_METRICS):
        op.drop_column('model_performance', name)
    op.drop_column('model_performance', 'task')
    op.drop_index('uq_model_registry_one_champion', table_name='model_registry')
    op.create_index('uq_model_registry_one_champion', 'model_registry', ['symbol', 'timeframe', 'target_pct'],
                    unique=True, postgresql_where='is_champion')
    op.drop_column('model_registry', 'task')
    op.drop_index('idx_resolution_forecasts_symbol_target_time', table_name='resolution_forecasts')
    op.drop_table('resolution_forecasts')
