"""The one exception the services raise for a request that cannot be served, with its reason."""
from __future__ import annotations


class DSSError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def not_logged_in() -> DSSError:
    return DSSError(401, "You are not logged in!")


def insufficient_privileges() -> DSSError:
    return DSSError(401, "Insufficient privileges")


def conflict(message: str) -> DSSError:
    return DSSError(409, message)
