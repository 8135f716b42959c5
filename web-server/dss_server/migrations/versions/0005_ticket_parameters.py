"""Per-ticket parameters and the scan's original name, read from the workspace at `ready`.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("parameters", sa.Text(), nullable=True))
    op.add_column("tickets", sa.Column("scan_name", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "scan_name")
    op.drop_column("tickets", "parameters")
