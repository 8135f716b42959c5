"""A real DSS web server (own process, fresh PostgreSQL database) and clients logged in to it."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from client_stack import ADMIN_EMAIL, PROVIDER, PROVIDER_EMAIL, SMALL_UPLOAD_LIMIT, TOKEN, Stack, service_repo
from dss_client import DSSClient
from helpers import PYTHON, REPO_ROOT, ServerProcess, free_port


@contextmanager
def _running_stack(make_database, workdir: Path, command=("-m", "dss_server", "run"),
                   **settings: str):
    """The server (`python COMMAND`, `settings` added to its environment) with an admin, a
    provider `testlab` with one user and one registered service."""
    port = free_port()
    env = {"DATABASE_URL": make_database("dss_client"), "PORT": str(port),
           "DSS_DATASTORE": str(workdir / "datastore"), "DSS_SECRET_KEY": "client-tests-" * 4,
           **settings}
    url = f"http://127.0.0.1:{port}"
    stack = Stack(url, {**os.environ, **env}, workdir, "ClientTestSeg")
    stack.server_cli("migrate")
    with ServerProcess([PYTHON, *command], env, f"{url}/healthz",
                       workdir / "server.log", cwd=workdir):
        admin_token = TOKEN.search(stack.server_cli("create-admin", ADMIN_EMAIL)).group(0)
        with DSSClient(url) as admin:
            admin.login(admin_token)
            stack.admin_session = admin.session_id
            admin.add_provider(PROVIDER)
            stack.provider_token = admin.issue_token(PROVIDER_EMAIL)  # creates the user
            admin.add_provider_user(PROVIDER, PROVIDER_EMAIL)
            repo = service_repo(workdir, stack.service_name, "1.0.0")
            stack.service_githash = admin.register_service(PROVIDER, str(repo))
        yield stack


@pytest.fixture(scope="session")
def stack(make_database, tmp_path_factory):
    """The development server (`python -m dss_server run`) most tests share."""
    with _running_stack(make_database, tmp_path_factory.mktemp("dss-server")) as running:
        yield running


@pytest.fixture(scope="session")
def small_upload_stack(make_database, tmp_path_factory):
    """A second server, gunicorn as deployed, that refuses uploads over SMALL_UPLOAD_LIMIT
    bytes with a 413 part way through the body (and then drops the connection, as the
    development server does not)."""
    gunicorn = ("-m", "gunicorn", "-c", str(REPO_ROOT / "web-server" / "gunicorn.conf.py"))
    with _running_stack(make_database, tmp_path_factory.mktemp("dss-small-upload"), gunicorn,
                        DSS_MAX_UPLOAD_BYTES=str(SMALL_UPLOAD_LIMIT)) as running:
        yield running


@pytest.fixture
def admin(stack) -> DSSClient:
    with DSSClient(stack.url, session_id=stack.admin_session) as client:
        yield client


@pytest.fixture
def user(stack) -> DSSClient:
    """A fresh ordinary user, logged in with a one-time token."""
    with DSSClient(stack.url) as client:
        client.login(stack.new_token(f"user-{uuid.uuid4().hex[:8]}@example.org"))
        yield client


@pytest.fixture
def provider(stack) -> DSSClient:
    with DSSClient(stack.url) as client:
        client.login(stack.provider_token)
        yield client


@pytest.fixture(scope="session")
def ct_image(tmp_path_factory) -> Path:
    """A small CT-like image (a real NIfTI file) to submit."""
    path = tmp_path_factory.mktemp("images") / "small_ct.nii.gz"
    array = np.full((8, 16, 16), -1000, dtype=np.int16)
    array[2:6, 4:12, 4:12] = -850
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path))
    return path
