"""What refuses a request, named for what it means; the services and views raise these.

`message` is the answer's text, byte for byte (the original server's wording, trailing spaces
included). Which HTTP status each one answers is error_statuses.py's business, nobody else's.
"""
from __future__ import annotations


class DSSError(Exception):
    """A request that cannot be served, for the reason `message`."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(DSSError):
    """A parameter, form, file name or descriptor that cannot be taken as sent."""


class QuotaExceeded(DSSError):
    """The user has as many open tickets as their tier allows."""


class AlreadyExists(DSSError):
    """A service of the same name and version is registered already."""


class NotFound(DSSError):
    """No such thing, or none the caller may see."""


class TicketNotFound(NotFound):
    """No such ticket of the caller's (or claimed by them, or not deleted)."""


class ServiceNotFound(NotFound):
    """No such service, or none the named provider provides."""


class ProviderNotFound(NotFound):
    """No provider of that name."""


class ResourceNotFound(NotFound):
    """No blob (a download link of a ticket's file) of that id."""


class LogEntryNotFound(NotFound):
    """No log entry of that id on a ticket the caller may read."""


class NotLoggedIn(DSSError):
    """The request comes with no valid session (or no valid token)."""

    def __init__(self, message: str = "You are not logged in!"):
        super().__init__(message)


class Forbidden(DSSError):
    """The caller is known but may not do this (not an admin, not the service's provider)."""


class NotAdmin(Forbidden):
    def __init__(self, message: str = "Insufficient privileges"):
        super().__init__(message)


class CrossSiteRefused(Forbidden):
    """A browser's request made by another web site, acting with the visitor's session."""


class Conflict(DSSError):
    """The ticket's state forbids this now (a lapsed claim, a finished ticket, a transition)."""


class BodyStalled(DSSError):
    """The request body stopped arriving."""


class NoSpace(DSSError):
    """The datastore cannot hold the upload."""
