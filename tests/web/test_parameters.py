"""Per-ticket parameters (issue 15) and scan names (issue 16): declared in service.json, checked
at registration, read from the workspace's `DSS` folder at `ready`, answered typed."""
import json
import re
import uuid

import pytest
from sqlalchemy import select

from dss_server.models import Ticket
from helpers import service_repo
from web_support import upload

NODULES = [
    {"name": "min_score", "type": "float", "default": 0.5, "min": 0, "max": 1,
     "description": "reporting threshold"},
    {"name": "max_nodules", "type": "int", "default": 10, "min": 1, "max": 50},
    {"name": "landmarks", "type": "bool", "default": True},
    {"name": "mode", "type": "choice", "choices": ["fast", "accurate"], "default": "fast"},
    {"name": "note", "type": "string", "max_length": 5, "default": ""},
]
DEFAULTS = {"min_score": 0.5, "max_nodules": 10, "landmarks": True, "mode": "fast", "note": ""}


def workspace(parameters=None, scan_name=None, nickname=None) -> bytes:
    """An .itksnap registry as dss_client writes it (DSS folder) or ITK-SNAP (without one)."""
    entries = "".join(f'<entry key="{k}" value="{v}" />' for k, v in (parameters or {}).items())
    scan = f'<entry key="ScanName" value="{scan_name}" />' if scan_name else ""
    dss = f'<folder key="DSS" >{scan}<folder key="Parameters" >{entries}</folder></folder>'
    meta = (f'<folder key="LayerMetaData" ><entry key="CustomNickName" value="{nickname}" />'
            f'</folder>') if nickname else ""
    layer = (f'<folder key="Layers" ><folder key="Layer[000]" ><entry key="Role" '
             f'value="MainRole" />{meta}</folder></folder>')
    return (f'<?xml version="1.0" encoding="UTF-8" ?><registry><entry key="SaveLocation" '
            f'value="/tmp" />{dss if parameters or scan_name else ""}{layer}</registry>').encode()


def make_ready(client, githash, content):
    ticket_id = int(client.post("/api/tickets", data={"githash": githash}).data)
    assert upload(client, f"/api/tickets/{ticket_id}/files/input", "layer_000_x.nii.gz",
                  b"image").status_code == 200
    assert upload(client, f"/api/tickets/{ticket_id}/files/input", "ws.itksnap",
                  content).status_code == 200
    return ticket_id, client.post(f"/api/tickets/{ticket_id}/status", data={"status": "ready"})


@pytest.fixture
def nodules(harness):
    return harness.service(name=f"Params-{uuid.uuid4().hex[:6]}", provider="paramlab",
                           descriptor={"name": "-", "version": "1", "parameters": NODULES})


def test_good_and_missing_values_are_stored_typed_with_defaults(harness, nodules):
    user = harness.client()
    ticket_id, response = make_ready(user, nodules, workspace(
        {"min_score": " 0.25", "max_nodules": "3", "landmarks": "no", "note": "abc"}))
    assert (response.status_code, response.data) == (200, b"ready")
    answer = user.get(f"/api/tickets/{ticket_id}/parameters")
    assert answer.content_type == "application/json"
    assert answer.json == {"min_score": 0.25, "max_nodules": 3, "landmarks": False,
                           "mode": "fast", "note": "abc"}
    without, _ = make_ready(user, nodules, workspace())  # ITK-SNAP's own: no DSS folder
    assert user.get(f"/api/tickets/{without}/parameters").json == DEFAULTS


@pytest.mark.parametrize("given, message", [
    ({"min_score": "abc"}, "Parameter 'min_score': expected a number from 0 to 1, got 'abc'"),
    ({"min_score": "1.5"}, "Parameter 'min_score': expected a number from 0 to 1, got '1.5'"),
    ({"min_score": "nan"}, "Parameter 'min_score': expected a number from 0 to 1, got 'nan'"),
    ({"max_nodules": "2.5"},
     "Parameter 'max_nodules': expected a whole number from 1 to 50, got '2.5'"),
    ({"landmarks": "maybe"}, "Parameter 'landmarks': expected true or false, got 'maybe'"),
    ({"mode": "slow"}, "Parameter 'mode': expected one of fast, accurate, got 'slow'"),
    ({"note": "toolong"},
     "Parameter 'note': expected a text of at most 5 characters, got 'toolong'"),
    ({"threshold": "1"}, "Parameter 'threshold': unknown to this service (its parameters: "
                         "landmarks, max_nodules, min_score, mode, note)"),
])
def test_a_refused_value_is_400_naming_it_and_the_ticket_stays_init(harness, nodules, given,
                                                                    message):
    user = harness.client()
    ticket_id, response = make_ready(user, nodules, workspace(given))
    assert (response.status_code, response.data.decode()) == (400, message)
    assert user.get(f"/api/tickets/{ticket_id}/status").data == b"init"
    refused = user.get(f"/api/tickets/{ticket_id}/parameters")
    assert refused.status_code == 409 and b"marked ready" in refused.data


def test_the_provider_route_answers_only_the_claimer(harness, nodules):
    user = harness.client()
    ticket_id, _ = make_ready(user, nodules, workspace({"mode": "accurate"}))
    provider = harness.provider_client("paramlab")
    url = f"/api/pro/tickets/{ticket_id}/parameters"
    assert provider.get(url).status_code == 400  # not claimed yet
    claimed = provider.post("/api/pro/services/claims", data={
        "services": nodules, "provider": "paramlab", "code": "01"})
    assert claimed.data.startswith(f"{ticket_id},".encode())
    assert provider.get(url).json == {**DEFAULTS, "mode": "accurate"}
    assert harness.client().get(f"/api/tickets/{ticket_id}/parameters").status_code == 400
    assert harness.provider_client("paramlab").get(url).status_code == 400  # not the claimer


def test_scan_name_from_the_dss_folder_else_the_main_layer_nickname(harness, nodules):
    user = harness.client()
    named, _ = make_ready(user, nodules, workspace(scan_name="chest ct 01.nii.gz",
                                                   nickname="ignored"))
    nicknamed, _ = make_ready(user, nodules, workspace(nickname="Patient A"))
    nameless, _ = make_ready(user, nodules, workspace())
    unreadable, _ = make_ready(user, nodules, b"<registry><folder")
    with harness.sessions() as db:
        names = dict(db.execute(select(Ticket.id, Ticket.scan_name)).all())
    assert [names[t] for t in (named, nicknamed, nameless, unreadable)] == [
        "chest ct 01.nii.gz", "Patient A", None, None]
    # the wire protocol's list stays as it was
    assert user.get("/api/tickets").data.decode().startswith(f"{named},Params-")
    assert user.get("/api/tickets").data.decode().count(",") == 8  # id,service,status x 4


def test_entity_declarations_in_the_workspace_are_not_expanded(harness, nodules):
    user = harness.client()
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "0.9">]><registry><folder key="DSS">'
            b'<folder key="Parameters"><entry key="min_score" value="&a;"/></folder></folder>'
            b'</registry>')
    ticket_id, response = make_ready(user, nodules, bomb)
    assert response.status_code == 200
    assert user.get(f"/api/tickets/{ticket_id}/parameters").json == DEFAULTS


def register_declared(harness, tmp_path, parameters):
    """An admin registers a service declaring `parameters`: (answer, commit, the admin)."""
    admin = harness.client(admin=True)
    admin.post("/api/admin/providers", data={"name": "DECL-LAB"})
    repo, commit = service_repo(tmp_path / "repo", {"name": "Declared", "version": "1",
                                                    "parameters": parameters})
    response = admin.post("/api/admin/providers/DECL-LAB/services", data={"repo": str(repo)})
    return response, commit, admin


@pytest.mark.parametrize("parameters, message", [
    ("min_score", "service.json: 'parameters' must be a list of at most 50 objects"),
    ([{"type": "float", "default": 1}], "service.json: parameter 1 needs a 'name' of letters, "
                                        "digits and _ (at most 40, not starting with a digit)"),
    ([{"name": "a", "type": "bool", "default": True}, {"name": "a", "type": "int", "default": 1}],
     "service.json: parameter 'a' is declared twice"),
    ([{"name": "k", "type": "complex", "default": 1}],
     "service.json: parameter 'k': 'type' must be one of float, int, bool, choice, string"),
    ([{"name": "k", "type": "float"}], "service.json: parameter 'k': a 'default' is required"),
    ([{"name": "k", "type": "float", "default": 2, "min": 0, "max": 1}],
     "service.json: parameter 'k': its default is invalid (expected a number from 0 to 1, "
     "got '2')"),
    ([{"name": "k", "type": "int", "default": 1, "min": 3, "max": 2}],
     "service.json: parameter 'k': 'min' is larger than 'max'"),
    ([{"name": "k", "type": "float", "default": 1, "maximum": 2}],
     "service.json: parameter 'k': unknown key(s) 'maximum' for type float"),
    ([{"name": "k", "type": "choice", "choices": [], "default": "a"}],
     "service.json: parameter 'k': 'choices' must be a non-empty list of texts"),
    ([{"name": "k", "type": "string", "default": "", "max_length": 10 ** 6}],
     "service.json: parameter 'k': 'max_length' must be a whole number from 1 to 1000"),
])
def test_registration_refuses_a_bad_declaration_naming_the_parameter(harness, tmp_path,
                                                                     parameters, message):
    response, _, _ = register_declared(harness, tmp_path, parameters)
    assert (response.status_code, response.data.decode()) == (400, message)


def test_registration_keeps_a_good_declaration(harness, tmp_path):
    response, commit, admin = register_declared(harness, tmp_path, NODULES)
    assert (response.status_code, response.data.decode()) == (200, commit)
    assert json.loads(admin.get(f"/api/services/{commit}/detail").data)["parameters"] == NODULES


@pytest.mark.parametrize("folder", ["lung-segmentation", "nodule-detection"])
def test_the_built_in_services_declare_valid_parameters(folder):
    from pathlib import Path

    from dss_server.services import parameters

    descriptor = json.loads((Path(__file__).resolve().parents[2] / "services" / folder
                             / "service.json").read_text())
    parameters.check_declaration(descriptor)
    if folder == "nodule-detection":
        assert parameters.resolve(parameters.declared(descriptor), {}) == {
            "min_score": 0.19, "min_diameter_mm": 3.0, "max_diameter_mm": 30.0}


def test_the_summary_extension_lists_scan_names_and_creation_times(harness, nodules):
    user = harness.client()
    named, _ = make_ready(user, nodules, workspace(scan_name="chest.nii.gz"))
    pending = int(user.post("/api/tickets", data={"githash": nodules}).data)
    harness.client().post("/api/tickets", data={"githash": nodules})  # someone else's
    answer = user.get("/api/tickets/summary")
    assert answer.content_type == "application/json"
    rows = answer.json
    assert [(r["id"], r["status"], r["scan_name"]) for r in rows] == [
        (named, "ready", "chest.nii.gz"), (pending, "init", None)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created"]) for r in rows)


def test_a_service_stored_with_a_bad_declaration_takes_no_parameters(harness):
    """One stored before registration checked declarations: no 500, its values are unknown."""
    githash = harness.service(provider="paramlab", descriptor={
        "name": "-", "version": "1", "parameters": [{"name": "k", "type": "float"}, "x"]})
    user = harness.client()
    ticket_id, response = make_ready(user, githash, workspace())
    assert response.status_code == 200
    assert user.get(f"/api/tickets/{ticket_id}/parameters").json == {}
    _, refused = make_ready(user, githash, workspace({"k": "1"}))
    assert (refused.status_code, refused.data) == (
        400, b"Parameter 'k': unknown to this service (its parameters: none)")
