"""The HTTP status of each refusal in errors.py: the one place that picks them (create_app's
error handlers and the pages' error pages read it). The statuses are the wire protocol's
(../shared/dss-protocol.md): the original answered 400 where a ticket, service, provider or
blob was not found, and 401 where the caller is known but not allowed."""
from __future__ import annotations

from . import errors

STATUSES: dict[type[errors.DSSError], int] = {
    errors.Invalid: 400,
    errors.QuotaExceeded: 400,
    errors.AlreadyExists: 400,
    errors.NotFound: 404,
    errors.TicketNotFound: 400,
    errors.ServiceNotFound: 400,
    errors.ProviderNotFound: 400,
    errors.ResourceNotFound: 400,
    errors.LogEntryNotFound: 400,
    errors.NotLoggedIn: 401,
    errors.Forbidden: 401,
    errors.CrossSiteRefused: 403,
    errors.BodyStalled: 408,
    errors.Conflict: 409,
    errors.NoSpace: 507,
}


def status_of(error: errors.DSSError) -> int:
    """The status of the most specific class of `error` that the table names."""
    return next(STATUSES[cls] for cls in type(error).__mro__ if cls in STATUSES)
