"""The web pages: the track record's daily sums (/record reads a few thousand summed rows instead of a million
forecasts), and covering indexes that let /forecasts find any page of the forecasts users got, and filter them by
outcome, from indexes alone.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'day_scores',
        sa.Column('run_type', sa.String(10), primary_key=True),
        sa.Column('symbol', sa.String(20), primary_key=True),
        sa.Column('timeframe', sa.String(10), primary_key=True),
        sa.Column('target_pct', sa.Numeric(6, 4), primary_key=True),
        sa.Column('day', sa.Date, primary_key=True),
        sa.Column('event', sa.String(12), primary_key=True),
        sa.Column('bin', sa.Integer, primary_key=True),
        sa.Column('n', sa.Integer, nullable=False),
        sa.Column('forecast_sum', sa.Float, nullable=False),
        sa.Column('outcome_sum', sa.Float, nullable=False),
        sa.Column('loss', sa.Float, nullable=False),
        sa.Column('reference_loss', sa.Float, nullable=False),
        sa.Column('covered', sa.Float),
        sa.Column('climatology_n', sa.Integer, nullable=False),
    )
    op.create_index('idx_day_scores_run_day', 'day_scores', ['run_type', 'day'])
    op.create_index('idx_day_scores_totals', 'day_scores', ['run_type', 'day'], postgresql_where=sa.text('bin = -1'))
    op.create_index('idx_predictions_champions_time', 'predictions', ['run_type', 'timestamp'],
                    postgresql_include=['id', 'symbol', 'target_pct'], postgresql_where=sa.text('is_champion'))
    op.create_index('idx_predictions_champions_group', 'predictions', ['run_type', 'symbol', 'target_pct', 'timestamp'],
                    postgresql_include=['id'], postgresql_where=sa.text('is_champion'))
    op.create_index('idx_prediction_outcomes_status', 'prediction_outcomes', ['prediction_id'],
                    postgresql_include=['status'])
    op.create_table(
        'day_scores_through',
        sa.Column('run_type', sa.String(10), primary_key=True),
        sa.Column('day', sa.Date, nullable=False),
    )


def downgrade() -> None:
    op.drop_table('day_scores_through')
    op.drop_index('idx_prediction_outcomes_status', table_name='prediction_outcomes')
    op.drop_index('idx_predictions_champions_group', table_name='predictions')
    op.drop_index('idx_predictions_champions_time', table_name='predictions')
    op.drop_index('idx_day_scores_totals', table_name='day_scores')
    op.drop_index('idx_day_scores_run_day', table_name='day_scores')
    op.drop_table('day_scores')
