"""Shared helpers of the web server tests (imported by module name: `conftest` is ambiguous across folders)."""
from __future__ import annotations

import uuid

from dss_server.models import ProviderAccess
from dss_server.services import auth
from helpers import ensure_provider, insert_service


def make_config(database_url, tmp_path, **overrides):
    settings = dict(database_url=database_url, datastore=tmp_path / "datastore",
                    var_dir=tmp_path / "var", secret_key="test-secret", noauth=False,
                    lease_sweep=False)
    settings.update(overrides)
    return settings


class Harness:
    """An app plus shortcuts to seed users, providers and services straight into the database."""

    def __init__(self, app):
        self.app = app
        self.sessions = app.extensions["dss_sessions"]
        self.datastore = app.config["DSS"].datastore

    def token(self, email, admin=False, tier="poweruser", reusable=False):
        with self.sessions() as db:
            user = auth.ensure_user(db, email, sysadmin=admin, tier=tier)
            user.sysadmin, user.tier = admin, tier
            token = auth.issue_token(db, user, reusable=reusable)
            db.commit()
            return token

    def client(self, email=None, admin=False, tier="poweruser"):
        """A test client logged in as a (new) user."""
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.org"
        client = self.app.test_client()
        response = client.post("/api/login", data={"token": self.token(email, admin, tier)})
        assert response.status_code == 200, response.data
        client.email = email
        client.user_id = self.user_id(email)
        return client

    def user_id(self, email):
        with self.sessions() as db:
            return auth.find_user(db, email).id

    def service(self, name=None, version="1.0.0", provider=None, descriptor=None):
        """A registered service (inserted directly; git registration has its own tests)."""
        name = name or f"Svc{uuid.uuid4().hex[:8]}"
        descriptor = descriptor or {"name": name, "version": version, "shortdesc": f"{name} test",
                                    "tags": [{"name": "T1", "type": "MainImage"}]}
        with self.sessions() as db:
            githash = insert_service(db, {**descriptor, "name": name, "version": version}, provider)
            db.commit()
        return githash

    def provider_client(self, provider, email=None):
        client = self.client(email)
        with self.sessions() as db:
            ensure_provider(db, provider)
            db.add(ProviderAccess(user_id=client.user_id, provider=provider))
            db.commit()
        client.provider = provider  # the name its claims give
        return client

    def submit(self, client, githash, files=(("ws.itksnap", b"<registry/>"),)):
        """Create a ticket, upload its input files, mark it ready; returns the id."""
        ticket_id = int(client.post("/api/tickets", data={"githash": githash}).data)
        for name, content in files:
            response = upload(client, f"/api/tickets/{ticket_id}/files/input", name, content)
            assert response.status_code == 200, response.data
        assert client.post(f"/api/tickets/{ticket_id}/status", data={"status": "ready"}).data == b"ready"
        return ticket_id


def upload(client, url, name, content, **fields):
    """A multipart upload shaped like ITK-SNAP's: myfile, filename, submit=send."""
    import io
    data = {"myfile": (io.BytesIO(content), name), "filename": name, "submit": "send", **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def explain_claim(db, order: str, githashes: list[str], provider: str, user_id: int) -> list[dict]:
    """Every node of the executed plan (EXPLAIN ANALYZE) of the server's claim statement for
    `order` ("fair" or "fifo"), rolled back: nothing is claimed."""
    from dss_server.services import claims

    statement = claims._STATEMENTS[order]
    connection = db.connection()
    connection.exec_driver_sql(statement.prepare)
    plan = connection.exec_driver_sql(
        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {statement.name} (%(g)s, %(n)s, %(p)s, 'c', "
        "%(u)s, NULL, now(), 'claimed', 'm')",
        {"g": githashes, "n": len(githashes), "p": provider, "u": user_id}).scalar()
    connection.exec_driver_sql(f"DEALLOCATE {statement.name}")  # the server prepares its own
    db.rollback()

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)
    return list(nodes(plan[0]["Plan"]))
