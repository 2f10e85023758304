"""Coverage is judged against what each interval claims (src.models.evaluation.time_metrics, issue #33): an expired
window lies inside an open interval (q90 past H, "after q10 h", claiming 0.9) and outside a closed one (claiming
0.8), with no credit from the forecast's own tail. The claimed share is stored beside the coverage; the daily sums
are dropped and summed again by the new rule (the daemon's daily job, or a backtest, writes them in full).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('day_scores', sa.Column('claimed', sa.Float()))
    op.add_column('model_performance', sa.Column('interval_claimed', sa.Float()))
    op.execute("DELETE FROM day_scores")
    op.execute("DELETE FROM day_scores_through")


def downgrade() -> None:
    op.drop_column('model_performance', 'interval_claimed')
    op.drop_column('day_scores', 'claimed')
    op.execute("DELETE FROM day_scores")
    op.execute("DELETE FROM day_scores_through")
