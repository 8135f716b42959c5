"""Through real servers on loopback: gunicorn on PostgreSQL (claim race, chunked uploads,
double slashes, Content-Length) and the embedded SQLite mode of `python -m dss_server run`."""
import os
import re
import subprocess
import threading
import uuid

import pytest
import requests

from dss_server import db as database
from dss_server.models import Provider, ProviderAccess, ProviderService, Service, Ticket
from dss_server.services import auth
from helpers import PYTHON, ServerProcess, free_port, wait_for_http

CLAIMERS, TICKETS = 20, 200
LOGIN_RACERS = 16


@pytest.fixture(scope="module")
def gunicorn_server(migrated_db, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {"DATABASE_URL": migrated_db, "PORT": str(port), "DSS_SECRET_KEY": "s" * 32,
           "DSS_DATASTORE": str(workdir / "datastore"), "WEB_CONCURRENCY": "2",
           "DSS_MAX_UPLOAD_BYTES": str(1024 * 1024), "HOME": str(workdir / "home")}
    with ServerProcess([PYTHON, "-m", "gunicorn", "-c", "web-server/gunicorn.conf.py"], env,
                       f"http://127.0.0.1:{port}/readyz", workdir / "gunicorn.log",
                       timeout=180) as server:
        server.url, server.home = f"http://127.0.0.1:{port}", workdir / "home"
        server.sessions = database.make_session_factory(database.make_engine(migrated_db))
        yield server


def login(server, email, reusable=False):
    with server.sessions() as db:
        token = auth.issue_token(db, auth.ensure_user(db, email, tier="xnat"), reusable=reusable)
        db.commit()
    session = requests.Session()
    response = session.post(f"{server.url}/api/login", data={"token": token})
    assert response.text == f"logged in as {email} \n"
    return session


def seed_ready_tickets(server, count):
    """A provider, its service and `count` ready tickets, written straight to the database."""
    githash, provider = uuid.uuid4().hex + uuid.uuid4().hex[:8], f"race-{uuid.uuid4().hex[:6]}"
    with server.sessions() as db:
        owner = auth.ensure_user(db, f"owner-{provider}@example.org")
        db.add_all([Provider(name=provider), Service(githash=githash, name=provider, version="1")])
        db.flush()
        db.add(ProviderService(provider_name=provider, service_githash=githash))
        tickets = [Ticket(user_id=owner.id, service_githash=githash, status="ready", attempts=0)
                   for _ in range(count)]
        db.add_all(tickets)
        db.commit()
        return githash, provider, sorted(t.id for t in tickets)


def test_twenty_claimers_over_two_hundred_tickets_claim_each_once(gunicorn_server):
    githash, provider, ticket_ids = seed_ready_tickets(gunicorn_server, TICKETS)
    sessions = []
    for n in range(CLAIMERS):
        session = login(gunicorn_server, f"claimer{n}-{provider}@example.org")
        with gunicorn_server.sessions() as db:
            user = auth.find_user(db, f"claimer{n}-{provider}@example.org")
            db.add(ProviderAccess(user_id=user.id, provider=provider))
            db.commit()
        sessions.append(session)
    claimed, errors = [], []

    def claimer(session):
        while True:
            response = session.post(f"{gunicorn_server.url}/api/pro/services/claims",
                                    data={"services": githash, "provider": provider, "code": "x"})
            if response.status_code != 200:
                errors.append((response.status_code, response.text))
                return
            if response.text == "None":
                return
            match = re.fullmatch(rf"(\d+),{githash},claimed\r\n", response.text)
            assert match, response.text
            claimed.append(int(match.group(1)))

    threads = [threading.Thread(target=claimer, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(claimed) == ticket_ids, "every ticket claimed exactly once"


def test_gunicorn_keeps_no_control_socket_in_home(gunicorn_server):
    """gunicorn 25+ opens ~/.gunicorn/gunicorn.ctl by default: one path for every instance of
    a user (several servers on a machine take it from each other), in a home folder that a
    container may not let it write. We use no control interface, so it is off."""
    assert requests.get(f"{gunicorn_server.url}/readyz", timeout=10).status_code == 200
    assert not (gunicorn_server.home / ".gunicorn").exists()


def test_concurrent_logins_with_one_single_use_token_let_exactly_one_in(gunicorn_server):
    """Two worker processes, many threads: the token is consumed atomically, not read and then
    deleted (which let several of the racing logins in)."""
    email = f"racer-{uuid.uuid4().hex[:8]}@example.org"
    with gunicorn_server.sessions() as db:
        token = auth.issue_token(db, auth.ensure_user(db, email))
        db.commit()
    start, answers = threading.Barrier(LOGIN_RACERS), []

    def log_in():
        with requests.Session() as session:  # its own connection, ready before the race
            session.get(f"{gunicorn_server.url}/healthz")
            start.wait()
            response = session.post(f"{gunicorn_server.url}/api/login", data={"token": token})
            answers.append((response.status_code, response.text))

    threads = [threading.Thread(target=log_in) for _ in range(LOGIN_RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [(200, f"logged in as {email} \n")] + \
        [(401, "unauthorized")] * (LOGIN_RACERS - 1)


def multipart_chunks(name, payload, boundary="dssboundary"):
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"myfile\"; "
           f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    for start in range(0, len(payload), 65536):
        yield payload[start:start + 65536]
    yield (f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"submit\"\r\n\r\n"
           f"send\r\n--{boundary}--\r\n").encode()


def test_chunked_upload_download_length_and_double_slashes(gunicorn_server):
    githash, provider, _ = seed_ready_tickets(gunicorn_server, 0)
    user = login(gunicorn_server, f"uploader-{provider}@example.org")
    url = gunicorn_server.url
    ticket = int(user.post(f"{url}//api/tickets", data={"githash": githash}).text)
    payload = os.urandom(300_000)
    response = user.post(f"{url}/api/tickets/{ticket}/files/input",
                         data=multipart_chunks("img.nii.gz", payload),
                         headers={"Content-Type": "multipart/form-data; boundary=dssboundary"})
    assert (response.status_code, response.text) == (200, "success")
    assert user.get(f"{url}//api/tickets/{ticket}/files/input").text == "0,img.nii.gz\r\n"
    download = user.get(f"{url}/api/tickets/{ticket}/files/input/0")
    assert download.content == payload
    assert download.headers["Content-Length"] == str(len(payload))
    too_big = user.post(f"{url}/api/tickets/{ticket}/files/input",
                        data=multipart_chunks("big.nii", os.urandom(1024 * 1024 + 10)),
                        headers={"Content-Type": "multipart/form-data; boundary=dssboundary"})
    assert too_big.status_code == 413 and "maximum upload size" in too_big.text
    assert user.get(f"{url}/api/tickets/{ticket}/files/input").text == "0,img.nii.gz\r\n"


def test_embedded_mode_starts_on_sqlite_and_prints_a_token(tmp_path):
    port = free_port()
    unset = ("DATABASE_URL", "POSTGRES_PORT_5432_TCP_ADDR", "DSS_SECRET_KEY", "DSS_DATASTORE",
             "ITK_SNAP_SERVER_NOAUTH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1")
    log = tmp_path / "server.log"
    process = subprocess.Popen([PYTHON, "-m", "dss_server", "run", "--host", "127.0.0.1"],
                               cwd=tmp_path, env=env, stdout=open(log, "wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", 60, process)
        text = log.read_text()
        assert f"http://127.0.0.1:{port}" in text
        token = re.search(r"login token: ([0-9a-f]{48})", text).group(1)
        session = requests.Session()
        response = session.post(f"http://127.0.0.1:{port}/api/login", data={"token": token})
        assert response.text == "logged in as admin@localhost \n"
        assert session.post(f"http://127.0.0.1:{port}/api/admin/providers",
                            data={"name": "local"}).text == "success"
        assert session.get(f"http://127.0.0.1:{port}/api/admin/providers").text == "local\r\n"
        assert (tmp_path / "var" / "dss.sqlite3").is_file()
        assert len((tmp_path / "var" / "secret_key").read_text().strip()) == 64
    finally:
        os.killpg(process.pid, 15)
        process.wait(10)


def test_refuses_to_start_without_a_secret_outside_embedded_mode(migrated_db, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DSS_SECRET_KEY", "ITK_SNAP_SERVER_NOAUTH")}
    result = subprocess.run([PYTHON, "-m", "dss_server", "run"], cwd=tmp_path, capture_output=True,
                            text=True, env={**env, "DATABASE_URL": migrated_db}, timeout=60)
    assert result.returncode == 2
    assert "DSS_SECRET_KEY is not set" in result.stderr


def test_a_streaming_upload_holds_no_lock_on_its_ticket(gunicorn_server):
    githash, provider, (ticket,) = seed_ready_tickets(gunicorn_server, 1)
    email = f"streamer-{provider}@example.org"
    session = login(gunicorn_server, email)
    with gunicorn_server.sessions() as db:
        db.add(ProviderAccess(user_id=auth.find_user(db, email).id, provider=provider))
        db.commit()
    url = gunicorn_server.url
    session.post(f"{url}/api/pro/services/claims", data={"services": githash, "provider": provider})
    body_half_sent, finish_body = threading.Event(), threading.Event()

    def slow_body():
        chunks = multipart_chunks("result.nii.gz", b"x" * 200_000)
        yield next(chunks)
        body_half_sent.set()
        finish_body.wait(120)
        yield from chunks

    result = {}
    uploader = threading.Thread(target=lambda: result.update(response=session.post(
        f"{url}/api/pro/tickets/{ticket}/files/results", data=slow_body(),
        headers={"Content-Type": "multipart/form-data; boundary=dssboundary"})))
    uploader.start()
    assert body_half_sent.wait(120)
    progress = requests.post(f"{url}/api/pro/tickets/{ticket}/progress", cookies=session.cookies,
                             data={"chunk_start": 0, "chunk_end": 1, "progress": 0.5}, timeout=60)
    upload_still_running = uploader.is_alive()
    finish_body.set()
    uploader.join(120)
    assert progress.text == "success" and upload_still_running
    assert result["response"].text == "success"
