"""The admin API (spec c.6, c.8): providers, users, git-registered services, tickets, purge, tokens."""
import json
import re
import socket
import subprocess

import pytest

from helpers import service_repo


def git_service_repo(root, name="RepoSvc", version="1.0.0", extra=None):
    """A service-descriptor repository made with `git init`; returns (path, commit)."""
    descriptor = {"name": name, "version": version, "shortdesc": "x" * 100, "longdesc": "long",
                  "url": "https://example.org", "tags": [{"name": "CT", "type": "MainImage",
                                                          "hint": "chest CT", "required": True}]}
    descriptor.update(extra or {})
    return service_repo(root / f"repo-{name}-{version}", descriptor)


@pytest.fixture
def admin(harness):
    return harness.client(admin=True)


def test_non_admins_are_refused(harness):
    user = harness.client()
    for url in ("/api/admin/providers", "/api/admin/tickets"):
        response = user.get(url)
        assert (response.status_code, response.data) == (401, b"Insufficient privileges")


def test_providers_and_their_users(harness, admin):
    assert admin.post("/api/admin/providers", data={"name": "ADM-LAB"}).data == b"success"
    assert b"ADM-LAB\r\n" in admin.get("/api/admin/providers").data
    member = harness.client("member@example.org")
    response = admin.post("/api/admin/providers/ADM-LAB/users",
                          data={"email": "member@example.org", "admin": "1"})
    assert response.data == b"Added user member@example.org to provider ADM-LAB"
    assert admin.get("/api/admin/providers/ADM-LAB/users").data == (
        f"{member.user_id},member@example.org,True\r\n").encode()
    unknown = admin.post("/api/admin/providers/ADM-LAB/users", data={"email": "ghost@example.org"})
    assert (unknown.status_code, unknown.data) == (401, b"Email unrecognized by the system")
    assert admin.get(f"/api/admin/providers/ADM-LAB/users/{member.user_id}/delete").data == b"None"
    assert admin.get("/api/admin/providers/ADM-LAB/users").data == b""
    bad = admin.post("/api/admin/providers", data={"name": "bad name/.."})
    assert bad.status_code == 400


def test_register_service_from_a_local_git_repo(harness, admin, tmp_path):
    repo, commit = git_service_repo(tmp_path)
    admin.post("/api/admin/providers", data={"name": "GIT-LAB"})
    response = admin.post("/api/admin/providers/GIT-LAB/services", data={"repo": str(repo), "ref": ""})
    assert (response.status_code, response.data) == (200, commit.encode())
    assert (harness.datastore / "services" / commit / "service.json").is_file()
    assert admin.get("/api/admin/providers/GIT-LAB/services").data == (
        f"RepoSvc,1.0.0,{commit},{'x' * 78}\r\n").encode()
    detail = json.loads(admin.get(f"/api/services/{commit}/detail").data)
    assert detail["tags"][0]["type"] == "MainImage"
    # file:// URL and an explicit ref give the same commit
    again = admin.post("/api/admin/providers/GIT-LAB/services",
                       data={"repo": f"file://{repo}", "ref": "main"})
    assert again.data == commit.encode()


def test_registration_errors(harness, admin, tmp_path):
    admin.post("/api/admin/providers", data={"name": "ERR-LAB"})
    url = "/api/admin/providers/ERR-LAB/services"
    missing = admin.post(url, data={"repo": str(tmp_path / "nothing")})
    assert (missing.status_code, missing.data) == (400, b"Error fetching Git repository")
    option = admin.post(url, data={"repo": "--upload-pack=touch /tmp/pwned"})
    assert option.status_code == 400
    broken, _ = git_service_repo(tmp_path, name="Broken")
    (broken / "service.json").write_text("{not json")
    subprocess.run(["git", "-C", str(broken), "-c", "user.name=t", "-c", "user.email=t@e.org",
                    "commit", "-qam", "break"], check=True)
    bad_json = admin.post(url, data={"repo": str(broken)})
    assert (bad_json.status_code, bad_json.data) == (400, b"Error parsing service.json file")
    first, _ = git_service_repo(tmp_path / "a", name="Twin")
    second, _ = git_service_repo(tmp_path / "b", name="Twin", extra={"longdesc": "other commit"})
    assert admin.post(url, data={"repo": str(first)}).status_code == 200
    clash = admin.post(url, data={"repo": str(second)})
    assert (clash.status_code, clash.data) == (400, b"A service with same name and version already exists")
    unknown_provider = admin.post("/api/admin/providers/NOPE/services", data={"repo": str(first)})
    assert unknown_provider.status_code == 400


def commit_symlink(repo, link, target):
    """Replace or add `link` in the repository as a symbolic link to `target`; commit all."""
    (repo / link).unlink(missing_ok=True)
    (repo / link).symlink_to(target)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e.org",
           "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", f"link {link}"], check=True)


@pytest.mark.parametrize("link, target", [
    ("service.json", "{secret}"),  # read straight through the link
    ("service.json", "docs/descriptor.json"),  # a link inside the tree is refused all the same
    ("etc", "/etc"),  # a folder leading out of the checkout
])
def test_a_symbolic_link_in_a_service_repository_is_refused(harness, admin, tmp_path, link,
                                                            target):
    """A descriptor outside the checkout (here a file of the server that looks like one) must
    never be read: the repository is refused, naming the link, and nothing is registered."""
    secret = tmp_path / "server-secret.json"
    secret.write_text(json.dumps({"name": "Leaked", "version": "1.0.0", "shortdesc": "secret"}))
    repo, _ = git_service_repo(tmp_path, name="Linked")
    (repo / "docs").mkdir()
    (repo / "docs" / "descriptor.json").write_text(secret.read_text())
    commit_symlink(repo, link, target.format(secret=secret))
    admin.post("/api/admin/providers", data={"name": "LINK-LAB"})
    response = admin.post("/api/admin/providers/LINK-LAB/services", data={"repo": str(repo)})
    assert (response.status_code, response.data.decode()) == (
        400, f"Service repository refused: {link} is a symbolic link (links are not allowed in "
             f"a service's tree)")
    assert admin.get("/api/admin/providers/LINK-LAB/services").data == b""
    assert not (harness.datastore / "services").exists()


def test_retire_service_and_provider(harness, admin, tmp_path):
    repo, commit = git_service_repo(tmp_path, name="Retiring")
    admin.post("/api/admin/providers", data={"name": "RET-LAB"})
    admin.post("/api/admin/providers/RET-LAB/services", data={"repo": str(repo)})
    assert commit.encode() in admin.get("/api/services").data
    assert admin.get(f"/api/admin/providers/RET-LAB/services/{commit}/delete").data == b"success"
    assert commit.encode() not in admin.get("/api/services").data
    assert admin.get("/api/admin/providers/RET-LAB/delete").data == b"None"
    assert b"RET-LAB\r\n" in admin.get("/api/admin/providers").data


def test_admin_tickets_and_purge(harness, admin):
    githash = harness.service(name="Purged", provider="purgers")
    user = harness.client("purge-user@example.org")
    ticket = harness.submit(user, githash)
    rows = admin.get("/api/admin/tickets").data.decode()
    assert re.search(rf"^{ticket},purge-user@example.org,Purged,ready,\d+\.0\r$", rows, re.M)
    assert admin.post("/api/admin/tickets/purge/completed", data={"days": "0"}).data.startswith(b"Purged ")
    assert user.get(f"/api/tickets/{ticket}/status").data == b"ready"
    assert admin.post("/api/admin/tickets/purge/all", data={"hours": "1"}).data.startswith(b"Purged ")
    assert user.get(f"/api/tickets/{ticket}/status").data == b"ready"
    purged = admin.post("/api/admin/tickets/purge/all", data={"hours": "0"})
    assert re.fullmatch(rb"Purged [1-9]\d* tickets", purged.data)
    assert user.get(f"/api/tickets/{ticket}/status").data == b"deleted"
    bad = admin.post("/api/admin/tickets/purge/all", data={"days": "soon"})
    assert bad.status_code == 400
    assert admin.post("/api/admin/tickets/purge/everything").status_code == 404


def test_admin_issues_provider_tokens(harness, admin):
    token = admin.post("/api/admin/tokens", data={"email": "robot@example.org", "reusable": "1"}).data
    assert re.fullmatch(rb"[0-9a-f]{48}", token)
    for _ in range(2):
        client = harness.app.test_client()
        assert client.post("/api/login", data={"token": token}).data == b"logged in as robot@example.org \n"
    single = admin.post("/api/admin/tokens", data={"email": "human@example.org"}).data
    assert harness.app.test_client().post("/api/login", data={"token": single}).status_code == 200
    assert harness.app.test_client().post("/api/login", data={"token": single}).status_code == 401
    assert admin.post("/api/admin/tokens", data={}).status_code == 400


def test_register_an_older_commit_or_a_tag_by_ref(harness, admin, tmp_path):
    repo, first = git_service_repo(tmp_path, name="Versions", version="1.0.0")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git + ["tag", "v1"], check=True)
    (repo / "service.json").write_text(json.dumps({"name": "Versions", "version": "2.0.0"}))
    subprocess.run(git + ["commit", "-qam", "v2"], check=True)
    admin.post("/api/admin/providers", data={"name": "REF-LAB"})
    url = "/api/admin/providers/REF-LAB/services"
    assert admin.post(url, data={"repo": str(repo), "ref": first}).data == first.encode()
    assert admin.post(url, data={"repo": str(repo), "ref": "v1"}).data == first.encode()
    head = admin.post(url, data={"repo": str(repo)}).data.decode()
    assert head != first and json.loads(admin.get(f"/api/services/{head}/detail").data)["version"] == "2.0.0"
    missing = admin.post(url, data={"repo": str(repo), "ref": "no-such-branch"})
    assert (missing.status_code, missing.data) == (400, b"Error fetching Git repository")


def test_a_git_remote_that_never_answers_is_400_with_the_reason(harness, admin, monkeypatch):
    from dss_server.services import registry
    monkeypatch.setattr(registry, "GIT_TIMEOUT", 1)
    admin.post("/api/admin/providers", data={"name": "SLOW-LAB"})
    with socket.socket() as silent:  # the kernel accepts connections; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        repo = f"git://127.0.0.1:{silent.getsockname()[1]}/x"
        response = admin.post("/api/admin/providers/SLOW-LAB/services", data={"repo": repo})
        assert response.status_code == 400
        assert response.data == b"Error fetching Git repository (no answer within 1 s)"
    assert admin.get("/api/admin/providers/SLOW-LAB/services").data == b""


def signs_in(harness, token):
    return harness.app.test_client().post("/api/login", data={"token": token}).status_code == 200


def test_provider_tokens_are_refused_for_administrators(harness, admin):
    refused = admin.post("/api/admin/tokens", data={"email": admin.email, "reusable": "1"})
    assert (refused.status_code, refused.data.decode()) == (
        400, f"Provider tokens are for service accounts, and {admin.email} is an administrator: "
             "use a dedicated account for the provider's daemon")
    login_token = admin.post("/api/admin/tokens", data={"email": admin.email})
    assert login_token.status_code == 200 and signs_in(harness, login_token.data.decode())


def test_a_provider_token_ends_with_its_accounts_last_provider(harness, admin):
    def member_with_token(email, *labs):
        token = admin.post("/api/admin/tokens", data={"email": email, "reusable": "1"}).data
        for lab in labs:
            admin.post(f"/api/admin/providers/{lab}/users", data={"email": email})
        return token.decode(), harness.user_id(email)
    for lab in ("TOK-A", "TOK-B", "TOK-C"):
        admin.post("/api/admin/providers", data={"name": lab})
    token, robot = member_with_token("robot-ab@example.org", "TOK-A", "TOK-B")
    admin.get(f"/api/admin/providers/TOK-A/users/{robot}/delete")
    assert signs_in(harness, token)  # still serves TOK-B
    assert admin.get(f"/api/admin/providers/TOK-B/users/{robot}/delete").data == b"None"
    assert not signs_in(harness, token)
    only_c, _ = member_with_token("robot-c@example.org", "TOK-C")
    also_a, _ = member_with_token("robot-ca@example.org", "TOK-C", "TOK-A")
    daemon = harness.app.test_client()  # signed in before its provider is retired
    assert daemon.post("/api/login", data={"token": only_c}).status_code == 200
    assert admin.get("/api/admin/providers/TOK-C/delete").data == b"None"
    assert not signs_in(harness, only_c) and signs_in(harness, also_a)
    assert daemon.get("/api/login").status_code == 401, "its session is signed out too"


def test_a_person_leaving_a_provider_stays_signed_in(harness, admin):
    """Only accounts that held a provider token are signed out with it."""
    admin.post("/api/admin/providers", data={"name": "TOK-LEAVE"})
    admin.post("/api/admin/providers/TOK-LEAVE/users", data={"email": admin.email})
    assert admin.get(f"/api/admin/providers/TOK-LEAVE/users/{harness.user_id(admin.email)}"
                     "/delete").data == b"None"
    assert admin.get("/api/login").status_code == 200
