"""The `dss` command line end to end: real server, a provider thread completing the ticket."""
import json
import threading

from client_cli import one_line_error, run_dss
from client_stack import PROVIDER, drain_ready
from dss_client import DSSClient
from dss_client.workspace import Workspace


def _complete_one_ticket(stack, work_dir, done: list):
    """What a dispatcher does: claim (long poll), download, report, upload a result, succeed."""
    with DSSClient(stack.url) as provider:
        provider.login(stack.provider_token)
        claim = provider.claim([stack.service_githash], PROVIDER, wait=60)
        ticket_id = claim.ticket_id
        inputs = provider.provider_download(ticket_id, work_dir / "in")
        provider.set_progress(ticket_id, 0.0, 1.0, 0.5)
        workspace = Workspace.load(next(p for p in inputs if p.suffix == ".itksnap"))
        provider.log_message(ticket_id, "info", "Lungs: right 2.1 l, left 1.9 l")
        for file in workspace.export(work_dir / "out", f"ticket_{ticket_id:08d}_results"):
            provider.upload_result(ticket_id, file)
        provider.set_status(ticket_id, "success")
        done.append(ticket_id)


def test_login_submit_wait_download_log_delete(stack, ct_image, tmp_path):
    config = tmp_path / "dss.json"
    login = run_dss(config, "login", stack.url, "--token", stack.new_token("cli@example.org"))
    assert login.returncode == 0 and "cli@example.org" in login.stdout, login.stderr
    services = run_dss(config, "services")
    assert stack.service_name in services.stdout and stack.service_githash in services.stdout

    drain_ready(stack)
    done: list[int] = []
    provider = threading.Thread(target=_complete_one_ticket, args=(stack, tmp_path / "provider", done))
    provider.start()
    submitted = run_dss(config, "submit", str(ct_image), "--service", stack.service_name,
                        "--wait", "--download", str(tmp_path / "results"))
    provider.join(60)
    assert submitted.returncode == 0, submitted.stderr
    ticket_id = int(submitted.stdout.splitlines()[0])
    assert done == [ticket_id]
    assert "Lungs: right 2.1 l" in submitted.stderr and "success" in submitted.stderr
    assert f"uploading ticket_{ticket_id:08d}.itksnap (" in submitted.stderr
    paths = submitted.stdout.splitlines()[1:]
    workspace = next(p for p in paths if p.endswith(f"ticket_{ticket_id:08d}_results.itksnap"))
    assert Workspace.load(workspace).find_layer().path.exists()

    again = run_dss(config, "download", str(ticket_id), str(tmp_path / "again"))
    assert sorted(line.rsplit("/", 1)[1] for line in again.stdout.splitlines()) == \
        sorted(p.rsplit("/", 1)[1] for p in paths)
    log = run_dss(config, "log", str(ticket_id))
    assert "Lungs: right 2.1 l, left 1.9 l" in log.stdout
    tickets = json.loads(run_dss(config, "tickets", "--json").stdout)
    [listed] = [row for row in tickets if row["id"] == ticket_id]  # keys added, none changed
    assert (listed["service"], listed["status"]) == (stack.service_name, "success")
    assert "status=success" in run_dss(config, "status", str(ticket_id)).stdout
    assert run_dss(config, "delete", str(ticket_id)).stdout.strip() == "deleted"
    assert one_line_error(run_dss(config, "status", "99999999")) == \
        "dss: ticket 99999999 does not exist or is not yours"


def test_wait_reports_a_failed_ticket_with_its_error(stack, ct_image, tmp_path):
    config = tmp_path / "dss.json"
    run_dss(config, "login", stack.url, stdin=stack.new_token("fails@example.org") + "\n")
    drain_ready(stack)
    ticket_id = int(run_dss(config, "submit", str(ct_image), "--service", stack.service_name).stdout)
    with DSSClient(stack.url) as provider:
        provider.login(stack.provider_token)
        assert provider.claim([stack.service_githash], PROVIDER).ticket_id == ticket_id
        provider.log_message(ticket_id, "error", "Inference server unreachable, try later")
        provider.set_status(ticket_id, "failed")
    line = one_line_error(run_dss(config, "wait", str(ticket_id)), after_progress=True)
    assert f"ticket {ticket_id} ended failed: Inference server unreachable, try later" in line
    assert run_dss(config, "retry", str(ticket_id)).stdout.strip() == "ready"
    run_dss(config, "delete", str(ticket_id))


def test_provider_and_admin_verbs(stack, tmp_path):
    admin_config, provider_config = tmp_path / "admin.json", tmp_path / "provider.json"
    admin_token = stack.new_token("admin@example.org")
    assert run_dss(admin_config, "login", stack.url, "--token", admin_token).returncode == 0
    providers = run_dss(admin_config, "admin", "providers", "--json")
    assert PROVIDER in json.loads(providers.stdout)
    users = run_dss(admin_config, "admin", "users", PROVIDER)
    assert "robot@example.org" in users.stdout
    token = run_dss(admin_config, "admin", "issue-token", "robot@example.org").stdout.strip()
    assert len(token) == 48

    assert run_dss(provider_config, "login", stack.url, "--token", token).returncode == 0
    listed = run_dss(provider_config, "provider", "services")
    assert stack.service_githash in listed.stdout
    drain_ready(stack)
    nothing = one_line_error(run_dss(provider_config, "provider", "claim", stack.service_githash,
                                     "--provider", PROVIDER))
    assert "no ticket ready" in nothing
    refused = one_line_error(run_dss(provider_config, "admin", "providers"))
    assert "needs an administrator account" in refused


def test_wait_gives_up_after_its_timeout(stack, ct_image, tmp_path):
    config = tmp_path / "dss.json"
    run_dss(config, "login", stack.url, "--token", stack.new_token("patient@example.org"))
    drain_ready(stack)
    ticket_id = int(run_dss(config, "submit", str(ct_image), "--service", stack.service_name).stdout)
    line = one_line_error(run_dss(config, "wait", str(ticket_id), "--timeout", "0.5"),
                          after_progress=True)
    assert line == (f"dss: ticket {ticket_id} still ready after 0.5 s; ticket {ticket_id} keeps "
                    f"running on the server: follow it with dss wait {ticket_id}, or cancel it "
                    f"with dss delete {ticket_id}")
    run_dss(config, "delete", str(ticket_id))


def test_download_says_why_there_is_nothing_and_makes_no_folder(stack, ct_image, tmp_path):
    config, out = tmp_path / "dss.json", tmp_path / "results"
    run_dss(config, "login", stack.url, "--token", stack.new_token("early@example.org"))
    drain_ready(stack)
    ticket_id = int(run_dss(config, "submit", str(ct_image), "--service", stack.service_name).stdout)

    def download_error() -> str:
        return one_line_error(run_dss(config, "download", str(ticket_id), str(out)))

    assert download_error() == (f"dss: ticket {ticket_id} is still running (ready, 0 %): "
                                f"wait for it with dss wait {ticket_id} --download {out}")
    with DSSClient(stack.url) as provider:
        provider.login(stack.provider_token)
        assert provider.claim([stack.service_githash], PROVIDER).ticket_id == ticket_id
        provider.set_status(ticket_id, "failed")
    assert download_error() == (f"dss: ticket {ticket_id} ended failed without results files: "
                                f"see why with dss log {ticket_id}")
    run_dss(config, "delete", str(ticket_id))
    assert download_error() == f"dss: ticket {ticket_id} was deleted"
    assert not out.exists()


def test_refused_token_and_unknown_service_say_what_to_do(stack, ct_image, tmp_path):
    config, token = tmp_path / "dss.json", stack.new_token("once@example.org")
    assert run_dss(config, "login", stack.url, "--token", token).returncode == 0
    for wrong in (token, "0" * 48):  # used once already; never issued
        assert one_line_error(run_dss(config, "login", stack.url, "--token", wrong)) == (
            "dss: the server refused the token (wrong, or already used: login tokens work once); "
            f"get a new one from {stack.url}/token or from your administrator")
    lowercase = stack.service_name.lower()
    assert one_line_error(run_dss(config, "submit", str(ct_image), "--service", lowercase)) == (
        f"dss: no service named {lowercase} (see dss services; names are case-sensitive)")


def _complete_tickets(stack, work_dir, count: int, done: list, fail_last: bool = False):
    for number in range(count):
        if fail_last and number == count - 1:
            with DSSClient(stack.url) as provider:
                provider.login(stack.provider_token)
                ticket_id = provider.claim([stack.service_githash], PROVIDER, wait=60).ticket_id
                provider.log_message(ticket_id, "error", "No lungs found")
                provider.set_status(ticket_id, "failed")
                done.append(ticket_id)
        else:
            _complete_one_ticket(stack, work_dir / str(number), done)


def test_submit_a_folder_waits_for_every_ticket_with_one_bar(stack, ct_image, tmp_path):
    config = tmp_path / "dss.json"
    assert run_dss(config, "login", stack.url, "--token",
                   stack.new_token("batch@example.org")).returncode == 0
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        (folder / name).write_bytes(ct_image.read_bytes())
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden files are not scans
    third = tmp_path / "c.nii.gz"
    third.write_bytes(ct_image.read_bytes())
    drain_ready(stack)
    done: list[int] = []
    provider = threading.Thread(target=_complete_tickets,
                                args=(stack, tmp_path / "provider", 3, done, True))
    provider.start()
    result = run_dss(config, "submit", str(folder), str(third), "--service", stack.service_name,
                     "--wait", "--download", str(tmp_path / "results"))
    provider.join(60)
    lines = result.stdout.split()
    tickets = [int(line) for line in lines if line.isdigit()]
    assert sorted(tickets) == sorted(done) and len(tickets) == 3
    for ticket_id in tickets[:2]:  # each success in DIR/ID, with its workspace
        assert str(tmp_path / "results" / str(ticket_id) /
                   f"ticket_{ticket_id:08d}_results.itksnap") in lines
    assert not (tmp_path / "results" / str(tickets[2])).exists()
    bar_lines = [line for line in result.stderr.splitlines() if line.startswith("3 tickets [")]
    assert bar_lines and bar_lines[-1].endswith("2 success, 1 failed"), result.stderr
    assert f"#{tickets[0]} [info] Lungs: right 2.1 l" in result.stderr
    assert result.returncode == 1
    assert one_line_error(result, after_progress=True) == \
        f"dss: ticket {tickets[2]} ended failed: No lungs found"


def test_submit_checks_every_file_before_making_any_ticket(stack, ct_image, tmp_path):
    config = tmp_path / "dss.json"
    assert run_dss(config, "login", stack.url, "--token",
                   stack.new_token("batch-bad@example.org")).returncode == 0
    before = run_dss(config, "tickets", "--json").stdout
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not an image")
    result = run_dss(config, "submit", str(ct_image), str(bad), "--service", stack.service_name)
    assert result.returncode == 1 and "notes.nii.gz" in one_line_error(result)
    assert run_dss(config, "tickets", "--json").stdout == before
