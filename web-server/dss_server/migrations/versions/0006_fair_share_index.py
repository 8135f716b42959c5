"""The fair-share claim's index: ready tickets by service, owner and id.

The claim walks each service's owners of ready tickets (a skip scan: one probe per owner, not
one row per ticket) and takes each owner's lowest ready id; ix_tickets_ready (service, id)
would make it read every ready ticket on each claim.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

READY = sa.text("status = 'ready'")


def upgrade() -> None:
    op.create_index("ix_tickets_ready_user", "tickets", ["service_githash", "user_id", "id"],
                    postgresql_where=READY, sqlite_where=READY)


def downgrade() -> None:
    op.drop_index("ix_tickets_ready_user", "tickets")
