"""A workspace layer whose header names another file as its voxels (/proc/self/environ, with
the provider token; another ticket's CT in the datastore) fails the ticket with the layer's
number and name, and that file never comes back: real web server and dispatcher processes,
the ticket uploaded file by file as a hostile user would (`dss submit` refuses such layers).
The inference server is a loopback stand-in: the ticket must fail before it is used."""
from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dispatcher_fakes import InferenceStub
from dss_client import DSSClient
from dss_client.sdk.register import service_repo
from dss_client.workspace import Workspace
from helpers import PYTHON, REPO_ROOT, ServerProcess, free_port, wait_for_status

PROVIDER, PROVIDER_EMAIL = "leak-lab", "robot@leak.test"
SECRET_CT = b"OTHER-PATIENT-CT" * 64   # another user's upload, waiting in the datastore
SHAPE = (4, 8, 8)                       # every ticket's CT, z y x


class LeakStack:
    """Web server (own database) with the lung service, and one dispatcher whose inference
    server is `inference_url`; `environ_bytes` is the size of the dispatcher's environment."""

    def __init__(self, tmp: Path, database_url: str, inference_url: str):
        self.tmp = tmp
        self.env = {"DATABASE_URL": database_url, "DSS_DATASTORE": str(tmp / "datastore"),
                    "DSS_SECRET_KEY": "leak-" + "x" * 40, "PORT": str(free_port())}
        self.url = f"http://127.0.0.1:{self.env['PORT']}"
        self.cli("migrate")
        self.cli("add-provider", PROVIDER)
        self.cli("grant", PROVIDER, PROVIDER_EMAIL)
        self.provider_token = self.cli("issue-token", PROVIDER_EMAIL, "--reusable")
        descriptor = REPO_ROOT / "services" / "lung-segmentation" / "service.json"
        self.cli("register-service", PROVIDER, str(service_repo(descriptor, tmp / "repos")))
        self.processes = [ServerProcess([PYTHON, "-m", "dss_server", "run", "--host", "127.0.0.1"],
                                        self.env, f"{self.url}/healthz", tmp / "web.log", cwd=tmp)]
        metrics = free_port()
        dispatcher = {"SERVER_URL": self.url, "DSS_PROVIDER_TOKEN": self.provider_token,
                      "DSS_PROVIDER_NAME": PROVIDER, "DSS_PROVIDER_CODE": "leak-node",
                      "LUNG_SEGMENTATION_SERVICE_URL": inference_url,
                      "NODULE_DETECTION_SERVICE_URL": inference_url,
                      "DSS_METRICS_PORT": str(metrics), "DSS_WORK_DIR": str(tmp / "work"),
                      "DSS_CLAIM_WAIT": "2", "DSS_POLL_INTERVAL": "0.5"}
        self.environ_bytes = sum(len(os.fsencode(k)) + len(os.fsencode(v)) + 2
                                 for k, v in {**os.environ, **dispatcher}.items())
        self.processes.append(ServerProcess([PYTHON, "-m", "dss_dispatcher"], dispatcher,
                                            f"http://127.0.0.1:{metrics}/healthz",
                                            tmp / "dispatcher.log"))

    def cli(self, *args: str) -> str:
        result = subprocess.run([PYTHON, "-m", "dss_server", *args], cwd=self.tmp, text=True,
                                capture_output=True, env={**os.environ, **self.env}, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def user(self, email: str) -> DSSClient:
        client = DSSClient(self.url)
        client.login(self.cli("issue-token", email))
        return client

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _nii_gz(path: Path) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros(SHAPE, np.uint8)), str(path))
    return path


@pytest.fixture(scope="module")
def inference(tmp_path_factory):
    label = _nii_gz(tmp_path_factory.mktemp("label") / "label.nii.gz").read_bytes()
    server = InferenceStub(label)
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, make_database, inference):
    pytest.importorskip("dss_server.cli", reason="the web server package is not installed")
    stack = LeakStack(tmp_path_factory.mktemp("leak"), make_database("dss_leak"), inference.url)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def other_ticket_input(stack, tmp_path_factory) -> Path:
    """Another user's ticket input, not yet ready: a file in the server's datastore."""
    upload = tmp_path_factory.mktemp("other") / "secret_ct.nii"
    upload.write_bytes(SECRET_CT)
    with stack.user("other@leak.test") as other:
        other.upload_input(other.create_ticket("LungSegmentation"), upload)
    [stored] = [p for p in (stack.tmp / "datastore").rglob("*")
                if p.is_file() and p.read_bytes() == SECRET_CT]
    return stored


def _environ_mhd(stack, _other) -> bytes:
    return (b"ObjectType = Image\nNDims = 3\nDimSize = %d 1 1\nElementType = MET_UCHAR\n"
            b"ElementDataFile = /proc/self/environ\n" % stack.environ_bytes)


def _smuggled_mha(stack, _other) -> bytes:
    """A checker reading the first ElementDataFile, or splitting lines at "\\r" too, sees LOCAL."""
    return (b"ObjectType = Image\nComment = x\rElementDataFile = LOCAL\nNDims = 3\n"
            b"DimSize = %d 1 1\nElementType = MET_UCHAR\n"
            b"ElementDataFile = /proc/self/environ\n" % stack.environ_bytes)


def _other_ticket_nhdr(_stack, other: Path) -> bytes:
    return (b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: %d 1 1\nencoding: raw\n"
            b"data file: %s\n\n" % (len(SECRET_CT), os.fsencode(other)))


@pytest.mark.slow
@pytest.mark.parametrize("name, header", [("environ.mhd", _environ_mhd),
                                          ("smuggled.mha", _smuggled_mha),
                                          ("other_ticket.nhdr", _other_ticket_nhdr)])
def test_a_layer_naming_another_file_fails_the_ticket_and_returns_nothing(
        stack, inference, other_ticket_input, tmp_path, name, header):
    folder = tmp_path / "submitted"
    folder.mkdir()
    (folder / name).write_bytes(header(stack, other_ticket_input))
    workspace = Workspace.for_image(_nii_gz(folder / "ct.nii.gz"))
    workspace.add_layer(folder / name, "OverlayRole")
    workspace.save(folder / "case.itksnap")
    with stack.user("attacker@leak.test") as user:
        ticket = user.create_ticket("LungSegmentation")
        for path in sorted(folder.iterdir()):
            user.upload_input(ticket, path)
        user.mark_ready(ticket)
        status = wait_for_status(user, ticket, {"success", "failed"}, timeout=60)
        errors = [e.message for e in user.log(ticket) if e.category == "error"]
        results = user.download(ticket, "results", tmp_path / "results")
    for path in results:   # before the assertions on the status: a leak is the worse failure
        data = path.read_bytes()
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        leaked = stack.provider_token.encode() in data or SECRET_CT[:32] in data
        assert not leaked, f"result file {path.name} holds the secret"
    assert status == "failed"
    [error] = errors
    assert error.startswith(f"The submitted workspace cannot be used: layer 1 ({name}): ")
    assert "separate" in error and "single .nii.gz, .nrrd or .mha file" in error
    assert "/" not in error, "no paths of the dispatcher's host"
    assert inference.jobs == 0, "refused before any image was sent on"
