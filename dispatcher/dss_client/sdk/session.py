"""A provider's conversation with the DSS server: token login, re-login when the session is
refused, and transient errors retried with backoff."""
from __future__ import annotations

import logging
import time

from dss_client import DSSClient, DSSError, DSSTransientError

from . import metrics
from .retry import retry

log = logging.getLogger(__name__)


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

    def _once(self, method: str, args, kwargs):
        if self.email is None:
            self.login()
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except DSSError as exc:
            if exc.status != 401 or isinstance(exc, DSSTransientError):
                raise
            log.info("session refused (%s); logging in again", exc)
            self.login()
            return getattr(self.client, method)(*args, **kwargs)

    def call_once(self, method: str, *args, **kwargs):
        """Logged in, but not retried: for a claim, whose lost answer must not be repeated
        (the repeat would claim a second ticket while the first waits for its lease)."""
        return self._once(method, args, kwargs)

    def call(self, method: str, *args, **kwargs):
        """`DSSClient.<method>(*args)`, logged in, retried while the server is unavailable."""
        def on_retry():
            metrics.RETRIES.labels(self.service_label, "dss").inc()
        return retry(lambda: self._once(method, args, kwargs), self.retry_budget,
                     f"DSS {method}", sleep=self.sleep, on_retry=on_retry)

    def close(self) -> None:
        self.client.close()
