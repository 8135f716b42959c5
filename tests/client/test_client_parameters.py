"""Per-ticket parameters and scan names from the client: stored in the workspace's `DSS` folder,
passed with `dss submit --param`, checked by a real server, read back typed."""
import json
import re
import uuid

import pytest

import helpers
from client_cli import one_line_error, run_dss
from client_stack import ADMIN_EMAIL, PROVIDER
from dss_client import DSSClient
from dss_client.workspace import Workspace
from dss_client.workspace_format import Registry

DECLARED = [{"name": "min_score", "type": "float", "default": 0.5, "min": 0, "max": 1},
            {"name": "mode", "type": "choice", "choices": ["fast", "accurate"],
             "default": "fast"},
            {"name": "landmarks", "type": "bool", "default": False}]


@pytest.fixture(scope="module")
def parameter_service(stack, tmp_path_factory):
    """A service declaring parameters, offered by the stack's provider."""
    name = f"Params{uuid.uuid4().hex[:6]}"
    repo, _ = helpers.service_repo(tmp_path_factory.mktemp("repo") / "svc", {
        "name": name, "version": "1", "parameters": DECLARED})
    with DSSClient(stack.url, session_id=stack.admin_session) as admin:
        return admin.register_service(PROVIDER, str(repo))


def test_parameters_and_scan_name_live_in_a_dss_folder_itksnap_keeps(ct_image, tmp_path):
    workspace = Workspace.for_image(ct_image)
    workspace.parameters = {"min_score": 0.3, "landmarks": True}
    workspace.scan_name = "patient 7.nii.gz"
    saved = Workspace.load(workspace.save(tmp_path / "ws.itksnap"))
    assert saved.parameters == {"min_score": "0.3", "landmarks": "true"}
    assert saved.scan_name == "patient 7.nii.gz"
    dss = Registry.from_xml(saved.path.read_bytes()).folders["DSS"]
    assert dss.entries == {"ScanName": "patient 7.nii.gz"}
    assert dss.folders["Parameters"].entries == {"landmarks": "true", "min_score": "0.3"}
    saved.parameters = {"mode": "fast"}  # replaces, not merges
    assert saved.parameters == {"mode": "fast"}


def _claim(stack, githash):
    provider = DSSClient(stack.url)
    provider.login(stack.provider_token)
    return provider, provider.claim([githash], PROVIDER)


def test_submit_param_end_to_end(stack, parameter_service, ct_image, tmp_path):
    config = tmp_path / "dss.json"
    assert run_dss(config, "login", stack.url, "--token",
                   stack.new_token(f"p-{uuid.uuid4().hex[:6]}@example.org")).returncode == 0
    submitted = run_dss(config, "submit", str(ct_image), "--service", parameter_service,
                        "--param", "min_score=0.25", "--param", "landmarks=yes")
    assert submitted.returncode == 0, submitted.stderr
    ticket_id = int(submitted.stdout.strip())
    provider, claim = _claim(stack, parameter_service)
    with provider:
        assert claim.ticket_id == ticket_id
        assert provider.provider_parameters(ticket_id) == {
            "min_score": 0.25, "mode": "fast", "landmarks": True}
    session = json.loads(config.read_text())["session_id"]
    with DSSClient(stack.url, session_id=session) as user:
        assert user.ticket_parameters(ticket_id) == {
            "min_score": 0.25, "mode": "fast", "landmarks": True}


def test_submit_with_a_refused_param_says_which_and_leaves_no_ticket(stack, parameter_service,
                                                                      ct_image, tmp_path):
    config = tmp_path / "dss.json"
    run_dss(config, "login", stack.url, "--token",
            stack.new_token(f"p-{uuid.uuid4().hex[:6]}@example.org"))
    bad = run_dss(config, "submit", str(ct_image), "--service", parameter_service,
                  "--param", "min_score=abc")
    assert ("HTTP 400: Parameter 'min_score': expected a number from 0 to 1, got 'abc'"
            in one_line_error(bad, after_progress=True))
    unknown = run_dss(config, "submit", str(ct_image), "--service", parameter_service,
                      "--param", "threshold=1")
    assert "Parameter 'threshold': unknown to this service" in one_line_error(
        unknown, after_progress=True)
    assert json.loads(run_dss(config, "tickets", "--json").stdout) == []
    malformed = run_dss(config, "submit", str(ct_image), "--service", parameter_service,
                        "--param", "min_score")
    assert malformed.returncode == 2
    assert "argument --param: expected NAME=VALUE, got 'min_score'" in malformed.stderr


def test_tickets_show_the_scan_name_and_utc_creation_time(stack, parameter_service, ct_image,
                                                          tmp_path):
    config = tmp_path / "dss.json"
    run_dss(config, "login", stack.url, "--token",
            stack.new_token(f"s-{uuid.uuid4().hex[:6]}@example.org"))
    image = run_dss(config, "submit", str(ct_image), "--service", parameter_service)
    saved = Workspace.for_image(ct_image).save(tmp_path / "visit 2.itksnap")
    workspace = run_dss(config, "submit", str(saved), "--service", parameter_service)
    ids = [int(image.stdout), int(workspace.stdout)]
    listed = json.loads(run_dss(config, "tickets", "--json").stdout)
    assert [(row["id"], row["status"], row["scan_name"]) for row in listed] == [
        (ids[0], "ready", "small_ct.nii.gz"), (ids[1], "ready", "visit 2.itksnap")]
    header, *lines = run_dss(config, "tickets").stdout.splitlines()
    assert header.split() == ["id", "service", "status", "scan", "created"]
    assert re.search(r"small_ct\.nii\.gz +\d{4}-\d\d-\d\d \d\d:\d\d UTC$", lines[0])
    assert "visit 2.itksnap" in lines[1]


def test_admin_tickets_give_durations_with_units(stack, user, parameter_service, ct_image,
                                                tmp_path):
    user.submit_workspace(ct_image, parameter_service)
    config = tmp_path / "dss.json"
    run_dss(config, "login", stack.url, "--token", stack.new_token(ADMIN_EMAIL))
    header, *lines = run_dss(config, "admin", "tickets").stdout.splitlines()
    assert header.split()[-1] == "duration" and lines
    assert all(re.search(r" (\d+ h )?\d+ min$", line) for line in lines)
    assert all(isinstance(row["duration"], float) for row in json.loads(
        run_dss(config, "admin", "tickets", "--json").stdout))
