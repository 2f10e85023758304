"""Alerts sent (one per crossing per prediction hour), resolved/pending counts on performance rows, every
Telegram send attempt, and why a group has no model or forecast.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('target_pct', sa.Numeric(precision=6, scale=4), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('probability', sa.Numeric(precision=7, scale=6), nullable=False),
    sa.Column('model_name', sa.String(length=50), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('symbol', 'timeframe', 'target_pct', 'timestamp')
    )
    op.create_table('group_status',
    sa.Column('symbol', sa.String(length=20), nullable=False),
    sa.Column('timeframe', sa.String(length=10), nullable=False),
    sa.Column('target_pct', sa.Numeric(precision=6, scale=4), nullable=False),
    sa.Column('stage', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('symbol', 'timeframe', 'target_pct', 'stage')
    )
    op.create_table('telegram_attempts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('attempted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['telegram_reports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.add_column('model_performance', sa.Column('resolved_predictions', sa.Integer(), nullable=True))
    op.add_column('model_performance', sa.Column('pending_predictions', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('model_performance', 'pending_predictions')
    op.drop_column('model_performance', 'resolved_predictions')
    op.drop_table('telegram_attempts')
    op.drop_table('group_status')
    op.drop_table('alerts')
