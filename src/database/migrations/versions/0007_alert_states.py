"""Alerts sent at least once and recorded exactly once: a claim keeps its state (pending, sent, failed with its
error, expired with the reason), its message and its attempts, so an alert that Telegram did not take is sent
again on the next cycles. Alerts claimed before this revision were sent or lost: they are marked sent.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('state', sa.String(length=10), server_default='pending', nullable=False))
    op.add_column('alerts', sa.Column('message', sa.Text(), nullable=True))
    op.add_column('alerts', sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
    op.add_column('alerts', sa.Column('error_message', sa.Text(), nullable=True))
    op.add_column('alerts', sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                                      nullable=False))
    op.execute("UPDATE alerts SET state = 'sent'")
    op.create_index('idx_alerts_unsent', 'alerts', ['timestamp'], postgresql_where=sa.text("state IN ('pending', 'failed')"))


def downgrade() -> None:
    op.drop_index('idx_alerts_unsent', table_name='alerts')
    for column in ('updated_at', 'error_message', 'attempts', 'message', 'state'):
        op.drop_column('alerts', column)
