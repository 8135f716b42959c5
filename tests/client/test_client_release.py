"""`DSSClient.release` and `dss provider release` against the real server; the request shape and
an older server's 404 against a scripted loopback server."""
from urllib.parse import parse_qs

import pytest

from client_loopback import Answer, LoopbackServer
from client_stack import PROVIDER, drain_ready
from dss_client import DSSClient, DSSError
from dss_client.cli import main


def claim_new_ticket(stack, user, provider, ct_image) -> int:
    drain_ready(stack)
    ticket = user.submit_workspace(ct_image, stack.service_githash)
    claim = provider.claim([stack.service_githash], PROVIDER, code="release-test")
    assert claim.ticket_id == ticket
    return ticket


def test_release_hands_the_ticket_back(stack, user, provider, ct_image):
    ticket = claim_new_ticket(stack, user, provider, ct_image)
    assert provider.release(ticket, "instance stopping") == "ready"
    assert user.status(ticket) == "ready"
    messages = [entry.message for entry in user.log(ticket)]
    assert f"Released by provider {PROVIDER} (instance stopping); back in the queue" in messages
    with pytest.raises(DSSError) as refused:
        provider.release(ticket)   # no longer claimed by this session
    assert refused.value.status == 409
    again = provider.claim([stack.service_githash], PROVIDER)
    assert again.ticket_id == ticket
    assert provider.set_status(ticket, "success") == "success"
    with pytest.raises(DSSError) as finished:
        provider.release(ticket)
    assert finished.value.status == 409 and "status is success" in str(finished.value)


def test_cli_release(stack, user, ct_image, tmp_path, monkeypatch, capsys):
    config = tmp_path / "dss.json"
    monkeypatch.setenv("DSS_CONFIG", str(config))
    assert main(["login", stack.url, "--token", stack.provider_token]) == 0
    drain_ready(stack)
    ticket = user.submit_workspace(ct_image, stack.service_githash)
    assert main(["provider", "claim", stack.service_githash, "--provider", PROVIDER]) == 0
    capsys.readouterr()
    assert main(["provider", "release", str(ticket), "going away"]) == 0
    assert capsys.readouterr().out.strip() == "ready"
    assert user.status(ticket) == "ready"


def test_release_request_shape_and_older_server():
    with LoopbackServer(lambda r: Answer(200, b"ready")) as server:
        client = DSSClient(server.url)
        assert client.release(7, "bye now") == "ready"
        assert client.release(8) == "ready"
    with_message, without = server.requests
    assert (with_message.method, with_message.path) == ("POST", "/api/pro/tickets/7/release")
    assert parse_qs(with_message.body.decode()) == {"message": ["bye now"]}
    assert without.path == "/api/pro/tickets/8/release" and without.body == b""
    with LoopbackServer(lambda r: Answer(404, b"Not Found")) as server:
        with pytest.raises(DSSError) as missing:
            DSSClient(server.url).release(7)
    assert missing.value.status == 404
