"""Safe to leave running: the registry's current rows read through an index, and the feature cache in one-day
chunks on TimescaleDB, so its retention policy drops a day at a time rather than a month.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

from src.database.migrations.timescale import is_hypertable

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None



def upgrade() -> None:
    op.create_index('idx_model_registry_current', 'model_registry',
                    ['timeframe', 'symbol', 'target_pct', 'task', 'model_name', sa.text('created_at DESC'),
                     sa.text('id DESC')])
    if is_hypertable(op.get_bind(), 'feature_cache'):
        op.execute("SELECT set_chunk_time_interval('feature_cache', INTERVAL '1 day')")


def downgrade() -> None:
    if is_hypertable(op.get_bind(), 'feature_cache'):
        op.execute("SELECT remove_retention_policy('feature_cache', if_exists => true)")
        op.execute("SELECT set_chunk_time_interval('feature_cache', INTERVAL '30 days')")
    op.drop_index('idx_model_registry_current', table_name='model_registry')
