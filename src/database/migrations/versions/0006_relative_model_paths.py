"""Model file paths relative to the models folder: a row names its folder, the registry joins it to
paths.data_dir/models, so moving the data folder (or copying a database with its models) breaks no model.
Rows whose absolute path ends in their own version become that version; others are left as they were (the
registry refuses a path it cannot find, with a reason that says to retrain).

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE model_registry SET path = version WHERE path LIKE '%/' || version")


def downgrade() -> None:
    pass  # the absolute folder is not known here; the relative paths stay
