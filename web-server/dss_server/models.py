"""Database tables (spec section a), plus ticket files, hashed tokens and claim leases.

Tables are created only by the Alembic migrations in migrations/versions/.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TICKET_STATUSES = ("init", "ready", "claimed", "success", "failed", "timeout", "deleted")
LOG_CATEGORIES = ("info", "warning", "error")
FILE_AREAS = ("input", "results")
TOKEN_KINDS = ("login", "reusable")


def utcnow() -> datetime:
    """Naive UTC: the spec's `timestamp without time zone`, same in PostgreSQL and SQLite."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for the statements built once (the ORM types `__table__` as any
    FromClause, which Core's insert() does not take)."""
    return cast(Table, model.__table__)


class UserTier(Base):
    __tablename__ = "user_tiers"
    tier: Mapped[str] = mapped_column(String(40), primary_key=True)
    max_tickets: Mapped[int] = mapped_column(Integer)
    priority_minutes: Mapped[int] = mapped_column(Integer)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(Text, unique=True)
    dispname: Mapped[str] = mapped_column(Text)
    sysadmin: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[str] = mapped_column(ForeignKey("user_tiers.tier"), default="guest")
    # Overrides the tier's quota of open tickets when set (issue 6); NULL means the tier's.
    max_tickets: Mapped[int | None] = mapped_column(Integer)


class Token(Base):
    """Login tokens (single use) and reusable provider tokens; only their sha256 is stored."""
    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint(_in("kind", TOKEN_KINDS), name="token_kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProviderAccess(Base):
    __tablename__ = "provider_access"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(78), primary_key=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)


class Session(Base):
    """A `webpy_session_id` cookie (stored as its sha256) and who it is logged in as."""
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    accept_terms: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    atime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Service(Base):
    __tablename__ = "services"
    githash: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(40))
    shortdesc: Mapped[str | None] = mapped_column(String(78))
    json: Mapped[str | None] = mapped_column(Text)
    pingtime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    current: Mapped[bool] = mapped_column(Boolean, default=True)


class Provider(Base):
    __tablename__ = "providers"
    name: Mapped[str] = mapped_column(String(78), primary_key=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True)


class ProviderService(Base):
    __tablename__ = "provider_services"
    provider_name: Mapped[str] = mapped_column(ForeignKey("providers.name"), primary_key=True)
    service_githash: Mapped[str] = mapped_column(ForeignKey("services.githash"), primary_key=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (CheckConstraint(_in("status", TICKET_STATUSES), name="ticket_status"),
                      # the ready queue: claims, queue positions, ready counts
                      Index("ix_tickets_ready", "service_githash", "id",
                            postgresql_where=text("status = 'ready'"),
                            sqlite_where=text("status = 'ready'")),
                      # the fair-share claim: each service's owners of ready tickets
                      Index("ix_tickets_ready_user", "service_githash", "user_id", "id",
                            postgresql_where=text("status = 'ready'"),
                            sqlite_where=text("status = 'ready'")),
                      # the lease sweep on every claim reads only overdue claims
                      Index("ix_tickets_lease", "last_activity",
                            postgresql_where=text("status = 'claimed'"),
                            sqlite_where=text("status = 'claimed'")))
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    service_githash: Mapped[str] = mapped_column(ForeignKey("services.githash"))
    status: Mapped[str] = mapped_column(String(16))
    # Lease of the current claim: which claim holds it, since when, last provider activity.
    claim_id: Mapped[int | None] = mapped_column(
        ForeignKey("claim_history.id", use_alter=True, name="tickets_claim_fk"))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Read from the input workspace when marked ready (NULL before, and for older tickets):
    # the typed parameter values as a JSON object, and the scan's original file name.
    parameters: Mapped[str | None] = mapped_column(Text)
    scan_name: Mapped[str | None] = mapped_column(Text)


class TicketHistory(Base):
    __tablename__ = "ticket_history"
    __table_args__ = (CheckConstraint(_in("status", TICKET_STATUSES), name="history_status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    atime: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ClaimHistory(Base):
    __tablename__ = "claim_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    provider: Mapped[str] = mapped_column(String(78))
    puser_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    provider_code: Mapped[str] = mapped_column(String(78))
    # The claiming session (sha256 of its cookie), or NULL for a cookieless NOAUTH provider.
    session_hash: Mapped[str | None] = mapped_column(String(64))
    atime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TicketProgress(Base):
    __tablename__ = "ticket_progress"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    chunk_start: Mapped[float] = mapped_column(Float, primary_key=True)
    chunk_end: Mapped[float] = mapped_column(Float)
    progress: Mapped[float] = mapped_column(Float, default=0.0)


class TicketLog(Base):
    __tablename__ = "ticket_log"
    __table_args__ = (CheckConstraint(_in("category", LOG_CATEGORIES), name="log_category"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    atime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TicketAttachment(Base):
    __tablename__ = "ticket_attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    mime_type: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    uuid: Mapped[str] = mapped_column(String(32), index=True)
    filename: Mapped[str] = mapped_column(Text)


class TicketLogAttachment(Base):
    __tablename__ = "ticket_log_attachment"
    log_id: Mapped[int] = mapped_column(ForeignKey("ticket_log.id"), primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("ticket_attachment.id"), primary_key=True)


class TicketFile(Base):
    """One uploaded file of a ticket area; the listing order (and so the index) comes from here."""
    __tablename__ = "ticket_files"
    __table_args__ = (UniqueConstraint("ticket_id", "area", "name", name="ticket_file_name"),
                      CheckConstraint(_in("area", FILE_AREAS), name="ticket_file_area"))
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    area: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
