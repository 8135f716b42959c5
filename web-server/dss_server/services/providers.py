"""Admin management of providers, their users and their services (spec c.6)."""
from __future__ import annotations

import re

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session as DB

from ..errors import DSSError
from ..models import ProviderAccess, Provider, ProviderService, Service, User
from .auth import find_user, user_by_id

PROVIDER_NAME = re.compile(r"^[\w\-]{1,78}$")


def check_name(name: str | None) -> str:
    name = (name or "").strip()
    if not PROVIDER_NAME.match(name):
        raise DSSError(400, f"Invalid provider name {name!r}: use 1-78 letters, digits, _ or -")
    return name


def all_providers(db: DB) -> list[str]:
    return list(db.scalars(select(Provider.name).order_by(Provider.name)))


def add(db: DB, name: str) -> None:
    name = check_name(name)
    provider = db.get(Provider, name)
    if provider is None:
        db.add(Provider(name=name, current=True))
    else:
        provider.current = True
    db.flush()


def existing(db: DB, name: str) -> Provider:
    provider = db.get(Provider, name)
    if provider is None:
        raise DSSError(400, f"Provider {name} does not exist")
    return provider


def retire(db: DB, name: str) -> None:
    """Provider and all its service links not current; services nobody provides retire too."""
    existing(db, name).current = False
    db.execute(update(ProviderService).where(ProviderService.provider_name == name)
               .values(current=False))
    retire_orphans(db)


def retire_orphans(db: DB) -> None:
    provided = select(ProviderService.service_githash).where(ProviderService.current.is_(True))
    db.execute(update(Service).where(Service.githash.not_in(provided)).values(current=False))


def users(db: DB, provider: str) -> list[tuple[int, str, bool]]:
    query = (select(User.id, User.email, ProviderAccess.admin)
             .join(ProviderAccess, ProviderAccess.user_id == User.id)
             .where(ProviderAccess.provider == provider).order_by(User.id))
    return [tuple(row) for row in db.execute(query)]


def grant(db: DB, provider: str, email: str, admin: bool = False) -> User:
    existing(db, provider)
    user = find_user(db, email or "")
    if user is None:
        raise DSSError(401, "Email unrecognized by the system")
    db.execute(delete(ProviderAccess).where(ProviderAccess.user_id == user.id,
                                            ProviderAccess.provider == provider))
    db.add(ProviderAccess(user_id=user.id, provider=provider, admin=admin))
    db.flush()
    return user


def revoke(db: DB, provider: str, user_id: str) -> User | None:
    """Remove the user's access to the provider; the user, or None when they had none (the
    admin API answers `None` either way, as the original)."""
    try:
        user = user_by_id(db, int(user_id))
    except ValueError:
        raise DSSError(400, f"Not a user id: {user_id!r}") from None
    if user is None:
        return None
    removed = db.execute(delete(ProviderAccess).where(ProviderAccess.user_id == user.id,
                                                      ProviderAccess.provider == provider))
    return user if removed.rowcount else None


def revoke_existing(db: DB, provider: str, user_id: str) -> User:
    """Revoke for the admin page, which reports what happened: no access to revoke is a 404."""
    user = revoke(db, provider, user_id)
    if user is None:
        raise DSSError(404, f"User {user_id} has no access to provider {provider}")
    return user


def services(db: DB, provider: str) -> list[tuple[str, str, str, str]]:
    query = (select(Service.name, Service.version, Service.githash, Service.shortdesc)
             .join(ProviderService, ProviderService.service_githash == Service.githash)
             .where(ProviderService.provider_name == provider, Service.current.is_(True))
             .order_by(Service.name))
    return [tuple(row) for row in db.execute(query)]


def retire_service(db: DB, provider: str, githash: str) -> None:
    link = db.get(ProviderService, (provider, githash))
    if link is None:
        raise DSSError(400, f"Provider {provider} does not provide service {githash}")
    link.current = False
    retire_orphans(db)
