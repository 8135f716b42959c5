"""The OpenAPI document: it parses, it lists exactly the app's API routes, and a schemathesis run
of it against a real NOAUTH server on a fresh PostgreSQL database finds no 5xx answer."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

import dss_server
from dss_client import DSSClient
from dss_server import create_app
from helpers import PYTHON, ServerProcess, free_port, service_repo

DOCUMENT = Path(dss_server.__file__).resolve().parent / "openapi.json"
METHODS = {"get", "post", "put", "delete", "patch"}
# Served outside /api but part of the protocol (c.5) or of operations.
OTHER_DOCUMENTED = {"/blobs/{blob_id}", "/healthz", "/readyz", "/metrics"}
PROVIDER = "testlab"  # the example provider name of the document
NOAUTH_ADMIN = "test@example.com"
MAX_CLAIM_WAIT = 0.2  # the document allows `wait` up to 60 s; the fuzz run must stay short


def load_document() -> dict:
    return json.loads(DOCUMENT.read_text())


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in METHODS}


def flask_path(rule: str) -> str:
    """`/api/tickets/<int:ticket_id>/files/<area>` -> `/api/tickets/{ticket_id}/files/{area}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_document_is_openapi_3_that_schemathesis_loads():
    document = load_document()
    assert document["openapi"].startswith("3.0.")
    operations = list(schemathesis.openapi.from_dict(document).get_all_operations())
    assert len(operations) == len(documented_operations(document))
    operation_ids = [op["operationId"] for item in document["paths"].values()
                     for method, op in item.items() if method in METHODS]
    assert len(operation_ids) == len(set(operation_ids))
    for item in document["paths"].values():
        for method, operation in item.items():
            if method in METHODS:
                assert "200" in operation["responses"], operation["operationId"]


def test_uploads_are_multipart_with_myfile():
    document = load_document()
    uploads = [op for item in document["paths"].values() for op in item.values()
               if "multipart/form-data" in op.get("requestBody", {}).get("content", {})]
    assert len(uploads) == 3  # user and provider file areas, attachments
    for op in uploads:
        schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert "myfile" in schema["required"]


def test_every_api_route_is_documented_and_every_documented_route_exists(migrated_db, tmp_path):
    app = create_app({"database_url": migrated_db, "datastore": tmp_path / "datastore",
                      "var_dir": tmp_path / "var", "noauth": True, "lease_sweep": False})
    served = {(method, flask_path(rule.rule)) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") or flask_path(rule.rule) in OTHER_DOCUMENTED
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = documented_operations(load_document())
    assert served - documented == set(), "routes missing from openapi.json"
    assert documented - served == set(), "documented routes the app does not serve"


def _service_repo(root: Path) -> Path:
    return service_repo(root / "service-repo", {
        "name": "FuzzSeg", "version": "1.0.0", "shortdesc": "fuzz test service", "tags": []})[0]


@pytest.fixture(scope="module")
def fuzz_server(make_database, tmp_path_factory):
    """A NOAUTH server with a provider, a service, and tickets in several states."""
    workdir = tmp_path_factory.mktemp("openapi")
    port = free_port()
    env = {"DATABASE_URL": make_database("dss_openapi"), "PORT": str(port),
           "ITK_SNAP_SERVER_NOAUTH": "1", "DSS_DATASTORE": str(workdir / "datastore")}
    subprocess.run([PYTHON, "-m", "dss_server", "migrate"], env={**os.environ, **env},
                   cwd=workdir, check=True, capture_output=True, timeout=120)
    url = f"http://127.0.0.1:{port}"
    with ServerProcess([PYTHON, "-m", "dss_server", "run"], env, f"{url}/healthz",
                       workdir / "server.log", cwd=workdir) as server:
        client = DSSClient(url)  # cookieless: the NOAUTH admin
        client.add_provider(PROVIDER)
        client.add_provider_user(PROVIDER, NOAUTH_ADMIN)
        githash = client.register_service(PROVIDER, str(_service_repo(workdir)))
        sample = workdir / "image.nii.gz"
        sample.write_bytes(b"not really an image")
        for _ in range(3):
            ticket_id = client.create_ticket(githash)
            client.upload_input(ticket_id, sample)
            client.mark_ready(ticket_id)
        claimed = client.claim([githash], provider=PROVIDER)
        client.log_message(claimed.ticket_id, "info", "started")
        yield url, server


# Generation settings of the fuzz run; the base URL is the fixture server's, given per call.
# A fixed seed makes the run the same every time: a failure in CI is a bug, not bad luck.
schema = schemathesis.openapi.from_path(DOCUMENT, config=SchemathesisConfig.from_dict({
    "seed": 20261125,
    "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    "generation": {"max-examples": 10, "database": "none"},
}))


def test_server_serves_this_document(fuzz_server):
    url, _ = fuzz_server
    response = requests.get(f"{url}/api/openapi.json", timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == load_document()


@schema.parametrize()
@hypothesis.settings(deadline=None, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_no_server_errors(case, fuzz_server):
    url, server = fuzz_server
    if isinstance(case.body, dict) and "wait" in case.body:
        case.body["wait"] = min(float(case.body["wait"]), MAX_CLAIM_WAIT)
    response = case.call(base_url=url, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    assert server.process.poll() is None, server.log_tail()
