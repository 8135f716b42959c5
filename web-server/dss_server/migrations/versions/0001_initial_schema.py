"""Initial schema: the tables of spec section (a), ticket files, tokens, claim leases; seeded tiers.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('providers',
    sa.Column('name', sa.String(length=78), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('services',
    sa.Column('githash', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('shortdesc', sa.String(length=78), nullable=True),
    sa.Column('json', sa.Text(), nullable=True),
    sa.Column('pingtime', sa.DateTime(), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('githash')
    )
    op.create_table('user_tiers',
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.Column('max_tickets', sa.Integer(), nullable=False),
    sa.Column('priority_minutes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tier')
    )
    op.bulk_insert(sa.table("user_tiers", sa.column("tier", sa.String), sa.column("max_tickets", sa.Integer),
                            sa.column("priority_minutes", sa.Integer)),
                   [{"tier": "guest", "max_tickets": 10, "priority_minutes": 30},
                    {"tier": "poweruser", "max_tickets": 60, "priority_minutes": 60},
                    {"tier": "xnat", "max_tickets": 100000, "priority_minutes": 600}])
    op.create_table('provider_services',
    sa.Column('provider_name', sa.String(length=78), nullable=False),
    sa.Column('service_githash', sa.String(length=40), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['provider_name'], ['providers.name'], ),
    sa.ForeignKeyConstraint(['service_githash'], ['services.githash'], ),
    sa.PrimaryKeyConstraint('provider_name', 'service_githash')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('dispname', sa.Text(), nullable=False),
    sa.Column('sysadmin', sa.Boolean(), nullable=False),
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['tier'], ['user_tiers.tier'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('provider_access',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=78), nullable=False),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('user_id', 'provider')
    )
    op.create_table('sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('accept_terms', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('atime', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_hash')
    )
    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('service_githash', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('last_activity', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('init', 'ready', 'claimed', 'success', 'failed', 'timeout', 'deleted')",
                       name='ticket_status'),
    sa.ForeignKeyConstraint(['service_githash'], ['services.githash'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_tickets_queue', 'tickets', ['status', 'service_githash', 'id'], unique=False)
    op.create_index(op.f('ix_tickets_user_id'), 'tickets', ['user_id'], unique=False)

    op.create_table('tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('login', 'reusable')", name='token_kind'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index(op.f('ix_tokens_user_id'), 'tokens', ['user_id'], unique=False)

    op.create_table('claim_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=78), nullable=False),
    sa.Column('puser_id', sa.Integer(), nullable=False),
    sa.Column('provider_code', sa.String(length=78), nullable=False),
    sa.Column('session_hash', sa.String(length=64), nullable=True),
    sa.Column('atime', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['puser_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_claim_history_ticket_id'), 'claim_history', ['ticket_id'], unique=False)

    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot add a constraint later
        op.create_foreign_key("tickets_claim_fk", "tickets", "claim_history", ["claim_id"], ["id"])
    op.create_table('ticket_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('mime_type', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('uuid', sa.String(length=32), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_ticket_attachment_ticket_id'), 'ticket_attachment', ['ticket_id'], unique=False)
    op.create_index(op.f('ix_ticket_attachment_uuid'), 'ticket_attachment', ['uuid'], unique=False)

    op.create_table('ticket_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('area', sa.String(length=16), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("area IN ('input', 'results')", name='ticket_file_area'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id', 'area', 'name', name='ticket_file_name')
    )
    op.create_index(op.f('ix_ticket_files_ticket_id'), 'ticket_files', ['ticket_id'], unique=False)

    op.create_table('ticket_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('atime', sa.DateTime(), nullable=False),
    sa.CheckConstraint("status IN ('init', 'ready', 'claimed', 'success', 'failed', 'timeout', 'deleted')",
                       name='history_status'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_ticket_history_atime'), 'ticket_history', ['atime'], unique=False)
    op.create_index(op.f('ix_ticket_history_ticket_id'), 'ticket_history', ['ticket_id'], unique=False)

    op.create_table('ticket_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('atime', sa.DateTime(), nullable=False),
    sa.CheckConstraint("category IN ('info', 'warning', 'error')", name='log_category'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_ticket_log_ticket_id'), 'ticket_log', ['ticket_id'], unique=False)

    op.create_table('ticket_progress',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('chunk_start', sa.Float(), nullable=False),
    sa.Column('chunk_end', sa.Float(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('ticket_id', 'chunk_start')
    )
    op.create_table('ticket_log_attachment',
    sa.Column('log_id', sa.Integer(), nullable=False),
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['ticket_attachment.id'], ),
    sa.ForeignKeyConstraint(['log_id'], ['ticket_log.id'], ),
    sa.PrimaryKeyConstraint('log_id', 'attachment_id')
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("tickets_claim_fk", "tickets", type_="foreignkey")
    for table in ("ticket_log_attachment", "ticket_progress", "ticket_log", "ticket_history",
                  "ticket_files", "ticket_attachment", "claim_history", "tokens", "tickets",
                  "sessions", "provider_access", "users", "provider_services", "user_tiers",
                  "services", "providers"):
        op.drop_table(table)
