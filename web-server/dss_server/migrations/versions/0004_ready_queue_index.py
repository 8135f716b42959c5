"""The ready queue as a partial index: ready tickets by service, in id order.

ix_tickets_queue (status, service_githash, id) lost to the primary key in the planner's eyes:
for `status = 'ready' AND service_githash = X ORDER BY id LIMIT 1` it walked the primary key
past every claimed ticket, so a claim got slower as the queue emptied. The partial index holds
only ready tickets and gives their id order straight away.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

READY = sa.text("status = 'ready'")


def upgrade() -> None:
    op.create_index("ix_tickets_ready", "tickets", ["service_githash", "id"],
                    postgresql_where=READY, sqlite_where=READY)
    op.drop_index("ix_tickets_queue", "tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_queue", "tickets", ["status", "service_githash", "id"])
    op.drop_index("ix_tickets_ready", "tickets")
