"""Clients that stall or wait, against a real gunicorn on loopback: a half-sent request gives its
thread back (DSS_BODY_TIMEOUT), a stalled upload holds no more disk than arrived and is dropped
with a 408, `wait=` claims cannot take every thread from /healthz, claim nothing for a client
that hung up and end when the server is stopped, and the temp file of an upload cut short by a
SIGKILL is removed as soon as the server starts again."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid

import pytest
import requests

from dss_server import db as database
from dss_server.models import ProviderAccess, Ticket
from dss_server.services import auth
from dss_server.services.files import UploadFile, upload_dir
from helpers import PYTHON, ServerProcess, free_port, insert_service

MIB = 1 << 20
BODY_TIMEOUT = 2
PROMPT = 5  # seconds: a generous bound for an answer that must not queue behind stalled work


def start_gunicorn(migrated_db, workdir, log_name="gunicorn.log"):
    port = free_port()
    env = {"DATABASE_URL": migrated_db, "PORT": str(port), "DSS_SECRET_KEY": "s" * 32,
           "DSS_DATASTORE": str(workdir / "datastore"), "WEB_CONCURRENCY": "1",
           "DSS_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    server = ServerProcess([PYTHON, "-m", "gunicorn", "-c", "web-server/gunicorn.conf.py"], env,
                           f"http://127.0.0.1:{port}/readyz", workdir / log_name, timeout=180)
    server.port, server.url = port, f"http://127.0.0.1:{port}"
    server.datastore = workdir / "datastore"
    return server


@pytest.fixture(scope="module")
def sessions(migrated_db):
    return database.make_session_factory(database.make_engine(migrated_db))


@pytest.fixture(scope="module")
def server(migrated_db, tmp_path_factory):
    with start_gunicorn(migrated_db, tmp_path_factory.mktemp("slow")) as running:
        yield running


def login(server, sessions, email, provider=None):
    """A logged-in requests.Session (with access to `provider` when given)."""
    with sessions() as db:
        user = auth.ensure_user(db, email, tier="xnat")
        if provider:
            db.add(ProviderAccess(user_id=user.id, provider=provider))
        token = auth.issue_token(db, user, reusable=provider is not None)
        db.commit()
    session = requests.Session()
    assert session.post(f"{server.url}/api/login", data={"token": token}).status_code == 200
    return session


def new_service(sessions):
    provider = f"slow-{uuid.uuid4().hex[:8]}"
    with sessions() as db:
        githash = insert_service(db, {"name": provider, "version": "1"}, provider)
        db.commit()
    return provider, githash


def stalled(server, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    # the server must end it by then: stalled clients' connections are closed at once, not
    # one after another with gunicorn's 2 s linger each on the worker's only event loop
    sock.settimeout(BODY_TIMEOUT + PROMPT)
    sock.sendall(head)
    return sock


def answer(sock: socket.socket) -> bytes:
    """What the server sends before it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    return received


def upload_files(datastore):
    return sorted(upload_dir(datastore).glob("upload-*"))


def test_half_sent_requests_give_their_threads_back(server):
    heads = [b"GET /api/tickets HTTP/1.1\r\nHost: x\r\n"] * 16  # headers never end
    heads += [b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n\r\ntoken=12"] * 4
    sockets = [stalled(server, head) for head in heads]
    assert requests.get(f"{server.url}/healthz", timeout=BODY_TIMEOUT + PROMPT).text == "ok"
    answers = [answer(sock) for sock in sockets]
    assert answers[:16] == [b""] * 16, "a request whose headers stall is closed"
    for received in answers[16:]:
        assert received.startswith(b"HTTP/1.1 408 ")
        assert b"The request body stopped arriving: no data for 2 s" in received


def test_a_stalled_upload_reserves_what_arrived_and_ends_with_408(server, sessions):
    _provider, githash = new_service(sessions)
    user = login(server, sessions, f"stall-{uuid.uuid4().hex[:8]}@example.org")
    ticket = int(user.post(f"{server.url}/api/tickets", data={"githash": githash}).text)
    part = (b"--b\r\nContent-Disposition: form-data; name=\"myfile\"; filename=\"ct.nii\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    head = (f"POST /api/tickets/{ticket}/files/input HTTP/1.1\r\nHost: x\r\n"
            f"Cookie: webpy_session_id={user.cookies['webpy_session_id']}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {1 << 30}\r\n\r\n")
    sock = stalled(server, head.encode() + part + os.urandom(4 * MIB))
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size >= 2 * MIB for p in upload_files(server.datastore)):
        assert time.monotonic() < deadline, "the upload's first bytes never reached the disk"
        time.sleep(0.05)
    [temp] = upload_files(server.datastore)
    assert temp.stat().st_blocks * 512 < 128 * MIB, "1 GiB announced, 4 MiB sent: not reserved"
    received = answer(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert not temp.exists(), "the stalled upload's temp file is removed"
    assert user.get(f"{server.url}/api/tickets/{ticket}/files/input").text == ""


def claim_in_thread(url, session, provider, githash, results, wait=30):
    def claim():
        response = session.post(f"{url}/api/pro/services/claims",
                                data={"services": githash, "provider": provider, "code": "c",
                                      "wait": str(wait)}, timeout=wait + 30)
        results.append(response.text)
    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    return thread


def waiting_claims(server, sessions, accounts, per_account):
    """`per_account` claims with wait=30 from each of `accounts` provider accounts, no ticket
    ready; returns the service, the threads and their results."""
    provider, githash = new_service(sessions)
    threads, results = [], []
    for n in range(accounts):
        account = login(server, sessions, f"waiter{n}-{provider}@example.org", provider)
        for _ in range(per_account):
            session = requests.Session()
            session.cookies.update(account.cookies)
            threads.append(claim_in_thread(server.url, session, provider, githash, results))
    return githash, threads, results


def finish(sessions, githash, threads, results, waiting):
    """The claims that answered at once said None; the `waiting` others take tickets made
    ready now (so they were waiting, not refused)."""
    deadline = time.monotonic() + PROMPT
    while len(results) < len(threads) - waiting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert results == ["None"] * (len(threads) - waiting)
    with sessions() as db:
        owner = auth.ensure_user(db, f"owner-{githash[:8]}@example.org")
        db.add_all([Ticket(user_id=owner.id, service_githash=githash, status="ready",
                           attempts=0) for _ in range(waiting)])
        db.commit()
    for thread in threads:
        thread.join(30)
    claimed = [text for text in results if text != "None"]
    assert len(claimed) == waiting and all(text.endswith(",claimed\r\n") for text in claimed)


def test_one_account_waits_in_at_most_four_threads_and_healthz_answers(server, sessions):
    githash, threads, results = waiting_claims(server, sessions, accounts=1, per_account=17)
    assert requests.get(f"{server.url}/healthz", timeout=PROMPT).text == "ok"
    finish(sessions, githash, threads, results, waiting=4)


def test_waiting_claims_take_at_most_half_the_threads(server, sessions):
    githash, threads, results = waiting_claims(server, sessions, accounts=5, per_account=4)
    assert requests.get(f"{server.url}/healthz", timeout=PROMPT).text == "ok"
    finish(sessions, githash, threads, results, waiting=8)


def test_a_waiting_claim_whose_client_hung_up_claims_nothing(server, sessions):
    """A dispatcher stopped while its claim waits: a ticket made ready after must stay ready
    for the next claimer, not sit claimed for nobody until its lease runs out."""
    provider, githash = new_service(sessions)
    account = login(server, sessions, f"gone-{provider}@example.org", provider)
    body = f"services={githash}&provider={provider}&code=c&wait=30"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"POST /api/pro/services/claims HTTP/1.1\r\nHost: x\r\n"
                  f"Cookie: webpy_session_id={account.cookies['webpy_session_id']}\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    time.sleep(1)  # the claim found nothing and waits
    sock.close()
    with sessions() as db:
        owner = auth.ensure_user(db, f"owner-{provider}@example.org")
        ticket = Ticket(user_id=owner.id, service_githash=githash, status="ready", attempts=0)
        db.add(ticket)
        db.commit()
        ticket_id = ticket.id
    time.sleep(3)  # waiters look every second without a notification (none from this insert)
    with sessions() as db:
        assert db.get_one(Ticket, ticket_id).status == "ready"
    claimed = account.post(f"{server.url}/api/pro/services/claims",
                           data={"services": githash, "provider": provider, "code": "c"})
    assert claimed.text.startswith(f"{ticket_id},")


def test_stopping_the_server_ends_waiting_claims_at_once(migrated_db, tmp_path, sessions):
    """SIGTERM (a rolling deploy, Ctrl-C of `make up`): the waiting claim answers None and the
    server exits, without waiting out `wait=30` (gunicorn would give it 30 s)."""
    server = start_gunicorn(migrated_db, tmp_path)
    try:
        provider, githash = new_service(sessions)
        account = login(server, sessions, f"stop-{provider}@example.org", provider)
        results: list[str] = []
        thread = claim_in_thread(server.url, account, provider, githash, results, wait=30)
        time.sleep(1)  # waiting
        os.killpg(server.process.pid, signal.SIGTERM)
        thread.join(PROMPT)
        assert results == ["None"]
        server.process.wait(PROMPT)
    finally:
        server.stop()


def test_a_killed_servers_upload_is_removed_at_restart_a_live_one_kept(migrated_db, tmp_path,
                                                                         sessions):
    first = start_gunicorn(migrated_db, tmp_path)
    try:
        _provider, githash = new_service(sessions)
        user = login(first, sessions, f"killed-{uuid.uuid4().hex[:8]}@example.org")
        ticket = int(user.post(f"{first.url}/api/tickets", data={"githash": githash}).text)
        live = UploadFile(upload_dir(first.datastore), max_bytes=1 << 30)  # another replica's
        live.write(b"still arriving")
        head = (f"POST /api/tickets/{ticket}/files/input HTTP/1.1\r\nHost: x\r\n"
                f"Cookie: webpy_session_id={user.cookies['webpy_session_id']}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {64 * MIB}\r\n\r\n--b\r\nContent-Disposition: form-data; "
                "name=\"myfile\"; filename=\"ct.nii\"\r\n\r\n").encode()
        sock = stalled(first, head + os.urandom(MIB))
        deadline = time.monotonic() + 30
        while len(upload_files(first.datastore)) < 2:
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        [cut_short] = [p for p in upload_files(first.datastore) if p != live.path]
        first.kill()
        sock.close()
    finally:
        first.stop()
    with start_gunicorn(migrated_db, tmp_path, "restarted.log"):
        assert not cut_short.exists(), "removed at start, not an hour later"
        assert live.path.exists(), "an upload another process still writes is kept"
    live.discard()
