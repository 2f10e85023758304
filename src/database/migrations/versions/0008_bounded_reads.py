"""Reads that cost the same on day 700 as on day 1: the hourly cycle, /health and /metrics look up the newest
rows and the open windows by time, through these indexes, instead of reading every forecast ever made.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('idx_predictions_run_time', 'predictions', ['run_type', 'timestamp'])
    op.create_index('idx_predictions_live_champions', 'predictions', ['symbol', 'target_pct', 'timestamp'],
                    postgresql_where=sa.text("run_type = 'live' AND is_champion"))
    op.create_index('idx_resolution_forecasts_run_time', 'resolution_forecasts', ['run_type', 'timestamp'])
    op.create_index('idx_model_performance_run_date', 'model_performance', ['run_type', 'evaluation_date'])


def downgrade() -> None:
    op.drop_index('idx_model_performance_run_date', table_name='model_performance')
    op.drop_index('idx_resolution_forecasts_run_time', table_name='resolution_forecasts')
    op.drop_index('idx_predictions_live_champions', table_name='predictions')
    op.drop_index('idx_predictions_run_time', table_name='predictions')
