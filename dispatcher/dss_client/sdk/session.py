"""A provider's conversation with the DSS server: token login, re-login when the session is
refused, and transient errors retried with backoff."""
from __future__ import annotations

import logging
import time
from typing import Callable, Concatenate, ParamSpec, TypeVar

from dss_client import DSSClient, DSSError, DSSTransientError

from . import metrics
from .retry import retry

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
# a DSSClient method named on the class (DSSClient.set_progress): the session supplies its
# own client, so a re-login is seen by the retried call and arguments are type-checked
ClientMethod = Callable[Concatenate[DSSClient, P], T]


class ProviderSession:
    """One DSSClient per worker: each worker logs in with its own session, to which its claims
    are fenced."""

    def __init__(self, server_url: str, token: str, retry_budget: float, service_label: str = "",
                 sleep=time.sleep):
        self.client = DSSClient(server_url)
        self.token, self.retry_budget, self.sleep = token, retry_budget, sleep
        self.service_label = service_label
        self.email: str | None = None

    def login(self) -> str:
        self.email = self.client.login(self.token)
        log.info("logged in to %s as %s", self.client.base_url, self.email)
        return self.email

    def call_once(self, method: ClientMethod[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`method(client, *args)`, logged in, but not retried: for a claim, whose lost answer
        must not be repeated (the repeat would claim a second ticket while the first waits for
        its lease)."""
        if self.email is None:
            self.login()
        try:
            return method(self.client, *args, **kwargs)
        except DSSError as exc:
            if exc.status != 401 or isinstance(exc, DSSTransientError):
                raise
            log.info("session refused (%s); logging in again", exc)
            self.login()
            return method(self.client, *args, **kwargs)

    def call(self, method: ClientMethod[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`method(client, *args)`, logged in, retried while the server is unavailable."""
        def on_retry():
            metrics.RETRIES.labels(self.service_label, "dss").inc()
        return retry(lambda: self.call_once(method, *args, **kwargs), self.retry_budget,
                     f"DSS {method.__name__}", sleep=self.sleep, on_retry=on_retry)

    def close(self) -> None:
        self.client.close()
