"""Every provider and admin verb of `dss`, run in-process (`main(argv)`) against the real server."""
import json

import pytest

from client_stack import PROVIDER, PROVIDER_EMAIL, drain_ready, service_repo
from dss_client.cli import main


@pytest.fixture
def dss(stack, tmp_path, monkeypatch, capsys):
    """Run `dss ARGS` as `email` (logged in with a fresh token); returns (exit code, stdout)."""
    def run(email: str, *args: str) -> tuple[int, str]:
        config = tmp_path / f"{email}.json"
        monkeypatch.setenv("DSS_CONFIG", str(config))
        if not config.exists():
            assert main(["login", stack.url, "--token", stack.new_token(email)]) == 0
        capsys.readouterr()
        code = main(list(args))
        return code, capsys.readouterr().out
    return run


def test_provider_verbs_process_a_ticket(stack, dss, ct_image, tmp_path):
    drain_ready(stack)
    code, out = dss("submitter@example.org", "submit", str(ct_image), "--service", stack.service_name)
    ticket = out.strip()
    robot, hashes = PROVIDER_EMAIL, stack.service_githash
    assert dss(robot, "provider", "available", hashes)[1].split("\n")[1].split() == \
        [hashes, stack.service_name, "1"]
    code, out = dss(robot, "provider", "claim", hashes, "--provider", PROVIDER, "--json")
    assert code == 0 and json.loads(out) == [{"ticket_id": int(ticket), "githash": hashes,
                                              "status": "claimed"}]
    code, out = dss(robot, "provider", "download", ticket, str(tmp_path / "in"))
    assert any(line.endswith(".itksnap") for line in out.split())
    assert dss(robot, "provider", "progress", ticket, "0", "1", "0.25")[1].strip() == "success"
    report = tmp_path / "report.csv"
    report.write_text("label,diameter_mm\r\n")
    assert int(dss(robot, "provider", "attach", ticket, str(report), "Nodule report",
                   "--mime-type", "text/csv")[1]) > 0
    assert int(dss(robot, "provider", "log", ticket, "info", "Found 0 nodules")[1]) > 0
    assert dss(robot, "provider", "upload", ticket, str(report))[1].startswith("uploaded")
    assert dss(robot, "provider", "status", ticket)[1].strip() == "claimed"
    assert dss(robot, "provider", "success", ticket)[1].strip() == "success"
    code, out = dss("submitter@example.org", "log", ticket, "--json")
    [entry] = [e for e in json.loads(out) if e["message"] == "Found 0 nodules"]
    assert entry["attachments"][0]["description"] == "Nodule report"
    attachment_id = entry["attachments"][0]["id"]
    code, out = dss("submitter@example.org", "download", ticket, str(tmp_path / "out"))
    fetched = tmp_path / "out" / "attachments" / f"{attachment_id}-nodule-report.csv"
    assert code == 0 and str(fetched) in out.split()
    assert fetched.read_bytes() == report.read_bytes()
    assert (tmp_path / "out" / "report.csv").read_bytes() == report.read_bytes()  # the result

    second = dss("submitter@example.org", "submit", str(ct_image), "--service", hashes)[1].strip()
    assert dss(robot, "provider", "claim", hashes, "--provider", PROVIDER)[0] == 0
    assert dss(robot, "provider", "fail", second, "No lungs found")[1].strip() == "failed"
    code, out = dss("submitter@example.org", "log", second)
    assert "No lungs found" in out and "error" in out


def test_service_verb_shows_descriptor_and_stats(stack, dss):
    code, out = dss("reader@example.org", "service", stack.service_githash)
    shown = json.loads(out)
    assert code == 0 and shown["detail"]["name"] == stack.service_name
    assert "queue_length" in shown["stats"]


def test_admin_verbs_manage_providers_services_and_tickets(stack, dss, tmp_path):
    admin = "admin@example.org"
    assert dss(admin, "admin", "add-provider", "cli-lab")[1].strip() == "success"
    assert "cli-lab" in dss(admin, "admin", "providers")[1].split()
    assert "Added user" in dss(admin, "admin", "grant", "cli-lab", PROVIDER_EMAIL, "--admin")[1]
    [member] = json.loads(dss(admin, "admin", "users", "cli-lab", "--json")[1])
    assert member["email"] == PROVIDER_EMAIL and member["admin"] is True
    dss(admin, "admin", "revoke", "cli-lab", str(member["id"]))
    assert json.loads(dss(admin, "admin", "users", "cli-lab", "--json")[1]) == []
    repo = service_repo(tmp_path, "CliVerbService", "0.1.0")
    githash = dss(admin, "admin", "register-service", "cli-lab", str(repo))[1].strip()
    assert githash in dss(admin, "admin", "services", "cli-lab")[1]
    assert dss(admin, "admin", "retire-service", "cli-lab", githash)[1].strip() == "success"
    dss(admin, "admin", "delete-provider", "cli-lab")
    assert dss(admin, "admin", "tickets", "--json")[0] == 0
    assert dss(admin, "admin", "purge", "completed", "--hours", "1000")[1].startswith("Purged ")
    token = dss(admin, "admin", "issue-token", "someone@example.org", "--single-use")[1].strip()
    assert len(token) == 48


def test_admin_and_provider_verbs_of_an_ordinary_user_say_what_account_they_need(stack, tmp_path,
                                                                                  monkeypatch, capsys):
    monkeypatch.setenv("DSS_CONFIG", str(tmp_path / "plain.json"))
    assert main(["login", stack.url, "--token", stack.new_token("plain@example.org")]) == 0
    capsys.readouterr()
    assert main(["admin", "providers"]) != 0
    admin_error = capsys.readouterr().err
    assert main(["provider", "claim", stack.service_githash, "--provider", PROVIDER]) != 0
    provider_error = capsys.readouterr().err
    assert admin_error.strip() == ("dss: this needs an administrator account (you are logged in, "
                                   "but not as an administrator)")
    assert "log in again" not in provider_error
    assert provider_error.startswith(f"dss: this account is not a member of a provider of service "
                                     f"{stack.service_githash}")
