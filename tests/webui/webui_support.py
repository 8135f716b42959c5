"""Shared helpers of the web UI tests (imported by module name: `conftest` is ambiguous across folders)."""
from __future__ import annotations

import io
import re
import uuid

from dss_server.models import ProviderAccess
from dss_server.services import auth
from helpers import ensure_provider, insert_service, service_repo

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Site:
    """An app plus shortcuts: users, signed-in clients, services, form posts with CSRF tokens."""

    def __init__(self, app):
        self.app = app
        self.sessions = app.extensions["dss_sessions"]

    def token(self, email: str, admin: bool = False, tier: str = "poweruser") -> str:
        with self.sessions() as db:
            user = auth.ensure_user(db, email, sysadmin=admin, tier=tier)
            user.sysadmin, user.tier = admin, tier
            token = auth.issue_token(db, user)
            db.commit()
            return token

    def client(self, email: str | None = None, admin: bool = False):
        """A test client signed in through the API's /api/login (the same session the pages use)."""
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.org"
        client = self.app.test_client()
        response = client.post("/api/login", data={"token": self.token(email, admin)})
        assert response.status_code == 200, response.data
        client.email = email
        with self.sessions() as db:
            client.user_id = auth.find_user(db, email).id
        return client

    def service(self, name: str | None = None, provider: str | None = None, **descriptor) -> str:
        name = name or f"Svc{uuid.uuid4().hex[:8]}"
        body = {"name": name, "version": "1.0.0", "shortdesc": f"{name} for tests",
                "longdesc": "A longer description", "url": "https://example.org/svc",
                "tags": [{"name": "CT", "type": "MainImage", "hint": "chest CT",
                          "required": True}], **descriptor}
        with self.sessions() as db:
            githash = insert_service(db, body, provider)
            db.commit()
        return githash

    def provider_client(self, provider: str):
        client = self.client()
        with self.sessions() as db:
            ensure_provider(db, provider)
            db.add(ProviderAccess(user_id=client.user_id, provider=provider))
            db.commit()
        return client

    def submit(self, client, githash: str) -> int:
        ticket_id = int(client.post("/api/tickets", data={"githash": githash}).data)
        upload(client, f"/api/tickets/{ticket_id}/files/input", "ws.itksnap", b"<registry/>")
        assert client.post(f"/api/tickets/{ticket_id}/status", data={"status": "ready"}).data \
            == b"ready"
        return ticket_id


def upload(client, url: str, name: str, content: bytes, **fields):
    data = {"myfile": (io.BytesIO(content), name), "filename": name, **fields}
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.data
    return response


def form_token(client, path: str = "/") -> str:
    """The CSRF token the pages put into their forms (one per browser session)."""
    page = client.get(path)
    found = CSRF_FIELD.search(page.get_data(as_text=True))
    assert found, f"no form token on {path} ({page.status_code})"
    return found.group(1)


def post_form(client, path: str, data: dict | None = None, token_from: str = "/"):
    return client.post(path, data={"csrf_token": form_token(client, token_from), **(data or {})})


def page_text(response) -> str:
    return response.get_data(as_text=True)


def git_service_repo(root, name="GitSvc", version="1.0.0"):
    """A service-descriptor repository made with `git init`; returns (path, commit)."""
    return service_repo(root / f"repo-{name}-{version}", {
        "name": name, "version": version, "shortdesc": f"{name} from git",
        "longdesc": "Registered from a git repository", "url": "https://example.org",
        "tags": [{"name": "CT", "type": "MainImage", "hint": "chest CT", "required": True}]})


def settings_for(database_url, root, overrides):
    settings = dict(database_url=database_url, datastore=root / "datastore", var_dir=root / "var",
                    secret_key="webui-test-secret", noauth=False, lease_sweep=False)
    settings.update(overrides)
    return settings
