"""The DSS client library: `DSSClient` speaks the DSS REST API for users, providers and admins."""
from .api import DSSClient
from .errors import DSSError, DSSLocalError, DSSTransientError, TransientError
from .wire import (
    AdminTicket,
    Attachment,
    AvailableService,
    Claim,
    FileEntry,
    LogEntry,
    ProviderService,
    ProviderUser,
    Service,
    Ticket,
)

__all__ = ["DSSClient", "DSSError", "DSSLocalError", "DSSTransientError", "TransientError",
           "AdminTicket", "Attachment", "AvailableService", "Claim", "FileEntry", "LogEntry",
           "ProviderService", "ProviderUser", "Service", "Ticket"]
