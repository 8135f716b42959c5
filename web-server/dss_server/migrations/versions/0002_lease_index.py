"""Partial index of claimed tickets by last activity, for the lease sweep run on every claim.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

CLAIMED = sa.text("status = 'claimed'")


def upgrade() -> None:
    op.create_index("ix_tickets_lease", "tickets", ["last_activity"],
                    postgresql_where=CLAIMED, sqlite_where=CLAIMED)


def downgrade() -> None:
    op.drop_index("ix_tickets_lease", "tickets")
