"""The 80 % interval's coverage of an expired window is now the forecast's own share of its tail past H when the
interval reaches H, and none when it ends before H (src.models.evaluation.time_metrics), not a whole hit whenever
P(within H) < 0.9: the stored daily sums were made with the old rule, so
they are dropped and summed again (the daemon's start, or a backtest, writes them in full).

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM day_scores")
    op.execute("DELETE FROM day_scores_through")


def downgrade() -> None:
    op.execute("DELETE FROM day_scores")
    op.execute("DELETE FROM day_scores_through")
