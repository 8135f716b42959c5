"""An SDK service against the original `itksnap-dss-server` 0.2.0 (pinned in the test
requirements), which has none of our extensions: `dss serve` claims and processes the ticket,
and the parameters the original cannot keep are the service's declared defaults."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from dss_client import DSSClient
from dss_client.sdk.register import service_repo
from dss_client.workspace import Workspace
from helpers import PYTHON, REPO_ROOT, ServerProcess, free_port, wait_for_status

pytestmark = pytest.mark.slow
EXAMPLE = REPO_ROOT / "services" / "example-threshold"
PROVIDER = "sdk-lab"


@pytest.fixture
def original(tmp_path):
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "itksnap_dss_server", "--server", "--port", str(port),
         "--cookie-domain", "", "--noauth", "--sqlite-path", str(tmp_path / "dss.sqlite3"),
         "--datastore-root", str(tmp_path / "datastore")],
        {}, f"http://127.0.0.1:{port}/api/token", tmp_path / "original.log", cwd=tmp_path)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_an_sdk_service_serves_the_original_server_with_default_parameters(original, phantom_ct,
                                                                             tmp_path):
    admin = DSSClient(original)   # NOAUTH: every client is the original's test administrator
    admin.add_provider(PROVIDER)
    admin.add_provider_user(PROVIDER, admin.whoami())
    githash = admin.register_service(PROVIDER, str(service_repo(EXAMPLE / "service.json",
                                                                 tmp_path / "repos")))
    token = requests.get(f"{original}/api/token", timeout=10).text.strip()
    metrics_port = free_port()
    serve = ServerProcess(
        [str(Path(PYTHON).parent / "dss"), "serve", f"{EXAMPLE / 'threshold.py'}:run"],
        {"SERVER_URL": original, "DSS_PROVIDER_TOKEN": token, "DSS_PROVIDER_NAME": PROVIDER,
         "DSS_PROVIDER_CODE": "original", "DSS_METRICS_PORT": str(metrics_port),
         "DSS_WORK_DIR": str(tmp_path / "work"), "DSS_CLAIM_WAIT": "0",
         "DSS_POLL_INTERVAL": "0.5", "DSS_RETRY_BUDGET": "5"},
        f"http://127.0.0.1:{metrics_port}/healthz", tmp_path / "serve.log")
    try:
        ct_path, _ = phantom_ct
        ticket = admin.submit_workspace(ct_path, githash)
        assert wait_for_status(admin, ticket, {"success", "failed"}) == "success", \
            [entry.message for entry in admin.log(ticket)] + [serve.log_tail()]
    finally:
        serve.stop()
    assert "using the defaults of" in serve.log_tail()
    paths = admin.download(ticket, "results", tmp_path / "result")
    (workspace_path,) = [path for path in paths if path.suffix == ".itksnap"]
    workspace = Workspace.load(workspace_path)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_path)))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(workspace.layers[1].path)))
    np.testing.assert_array_equal(mask, (ct > ct.mean()).astype(mask.dtype))   # offset 0.0


def test_the_original_server_has_no_parameters_route(original):
    """What the fallback relies on: the original answers 404 to our extension's route."""
    answer = requests.get(f"{original}/api/pro/tickets/1/parameters", timeout=10)
    assert answer.status_code == 404
