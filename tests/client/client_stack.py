"""The client tests' view of a real DSS web server: its URL, a service, tokens, helpers."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import helpers
from dss_client import DSSClient
from helpers import PYTHON

ADMIN_EMAIL = "admin@example.org"
PROVIDER_EMAIL = "robot@example.org"
PROVIDER = "testlab"
TOKEN = re.compile(r"\b[0-9a-f]{48}\b")
SMALL_UPLOAD_LIMIT = 64 * 1024  # DSS_MAX_UPLOAD_BYTES of `small_upload_stack`


@dataclass
class Stack:
    url: str
    env: dict
    workdir: Path
    service_name: str
    service_githash: str = ""
    admin_session: str = ""
    provider_token: str = ""

    def server_cli(self, *args: str) -> str:
        """`python -m dss_server ARGS` against this server's database; its stdout."""
        result = subprocess.run([PYTHON, "-m", "dss_server", *args], env=self.env, cwd=self.workdir,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def new_token(self, email: str) -> str:
        """A single-use login token for `email` (the user is created if new), via the admin API."""
        with DSSClient(self.url, session_id=self.admin_session) as admin:
            return admin.issue_token(email, reusable=False)


def service_repo(root: Path, name: str, version: str) -> Path:
    """A git repository holding a service.json, as an admin registers it."""
    return helpers.service_repo(root / f"{name}-{version}-repo", {
        "name": name, "version": version, "shortdesc": f"{name}, a test service",
        "longdesc": "Used by the client tests.", "url": "https://example.org",
        "tags": [{"name": "CT", "type": "MainImage", "hint": "chest CT", "required": True}]})[0]


def drain_ready(stack: Stack) -> None:
    """Claim (and fail) whatever earlier tests left ready, so the next claim gets a new ticket."""
    with DSSClient(stack.url) as provider:
        provider.login(stack.provider_token)
        while (claim := provider.claim([stack.service_githash], PROVIDER)) is not None:
            provider.set_status(claim.ticket_id, "failed")
