"""Admin management of providers, their users and their services (spec c.6)."""
from __future__ import annotations

import re
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session as DB

from ..errors import Forbidden, Invalid, NotFound, ProviderNotFound, ServiceNotFound
from ..models import Provider, ProviderAccess, ProviderService, Service, User
from .auth import ensure_user, find_user, issue_token, revoke_provider_tokens, user_by_id

PROVIDER_NAME = re.compile(r"^[\w\-]{1,78}$")


def check_name(name: str | None) -> str:
    name = (name or "").strip()
    if not PROVIDER_NAME.match(name):
        raise Invalid(f"Invalid provider name {name!r}: use 1-78 letters, digits, _ or -")
    return name


def all_providers(db: DB) -> list[str]:
    return list(db.scalars(select(Provider.name).order_by(Provider.name)))


def add(db: DB, name: str | None) -> None:
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
        raise ProviderNotFound(f"Provider {name} does not exist")
    return provider


def retire(db: DB, name: str) -> None:
    """Provider and all its service links not current; services nobody provides retire too;
    its users who serve no other current provider lose their provider tokens."""
    existing(db, name).current = False
    db.flush()
    _drop_tokens_of_former_members(db, list(db.scalars(
        select(ProviderAccess.user_id).where(ProviderAccess.provider == name))))
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
    return [(user_id, email, admin) for user_id, email, admin in db.execute(query)]


def grant(db: DB, provider: str, email: str, admin: bool = False) -> User:
    existing(db, provider)
    user = find_user(db, email or "")
    if user is None:
        raise Forbidden("Email unrecognized by the system")
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
        raise Invalid(f"Not a user id: {user_id!r}") from None
    if user is None:
        return None
    removed = cast(CursorResult[Any], db.execute(  # what a DELETE gives
        delete(ProviderAccess).where(ProviderAccess.user_id == user.id, ProviderAccess.provider == provider)))
    if not removed.rowcount:
        return None
    _drop_tokens_of_former_members(db, [user.id])
    return user


def revoke_existing(db: DB, provider: str, user_id: str) -> User:
    """Revoke for the admin page, which reports what happened: no access to revoke is a 404."""
    user = revoke(db, provider, user_id)
    if user is None:
        raise NotFound(f"User {user_id} has no access to provider {provider}")
    return user


def _drop_tokens_of_former_members(db: DB, user_ids: list[int]) -> None:
    """Provider tokens exist only to serve providers: users left with no access to a current
    provider lose theirs, so a revoked daemon cannot sign in again."""
    serving = set(db.scalars(select(ProviderAccess.user_id)
                             .join(Provider, Provider.name == ProviderAccess.provider)
                             .where(Provider.current.is_(True),
                                    ProviderAccess.user_id.in_(user_ids))))
    revoke_provider_tokens(db, [uid for uid in user_ids if uid not in serving])


def provider_token(db: DB, provider: str, email: str) -> tuple[User, str]:
    """A reusable token for a provider's daemon: the account (created if new) gets access to
    the provider, then the token (refused for administrators)."""
    user = ensure_user(db, email or "")
    grant(db, provider, user.email)
    return user, issue_token(db, user, reusable=True)


def services(db: DB, provider: str) -> list[tuple[str, str, str, str | None]]:
    query = (select(Service.name, Service.version, Service.githash, Service.shortdesc)
             .join(ProviderService, ProviderService.service_githash == Service.githash)
             .where(ProviderService.provider_name == provider, Service.current.is_(True))
             .order_by(Service.name))
    return [(name, version, githash, shortdesc) for name, version, githash, shortdesc in db.execute(query)]


def retire_service(db: DB, provider: str, githash: str) -> None:
    link = db.get(ProviderService, (provider, githash))
    if link is None:
        raise ServiceNotFound(f"Provider {provider} does not provide service {githash}")
    link.current = False
    retire_orphans(db)
