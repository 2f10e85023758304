"""Live how-soon figures score only the fates known when they are computed (src.models.evaluation.scoring
.known_fates): a day's sums count P(within 24 h) of the forecasts whose 24 hours had closed, and the interval's
coverage of the complete windows, counted apart in `covered_n`. The stored sums are dropped and summed again
(the daemon's start, or a backtest, writes them in full).

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('day_scores', sa.Column('covered_n', sa.Integer()))
    op.execute("DELETE FROM day_scores")
    op.execute("DELETE FROM day_scores_through")


def downgrade() -> None:
    op.drop_column('day_scores', 'covered_n')
    op.execute("DELETE FROM day_scores")
    op.execute("DELETE FROM day_scores_through")
