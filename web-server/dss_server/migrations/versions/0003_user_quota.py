"""A per-user ticket quota overriding the tier's (issue 6); NULL means the tier's quota.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("max_tickets", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "max_tickets")
