"""Per-user ticket quota (issue 6): `users.max_tickets` overrides the tier's; NULL falls back."""
import threading
import time
import uuid

import requests
from sqlalchemy import func, select

from dss_server.models import Ticket, User, UserTier
from test_http_server import gunicorn_server, login, seed_ready_tickets  # noqa: F401 (fixture)

GUEST_QUOTA = 10  # seeded by the initial migration


def set_user_quota(harness, client, max_tickets):
    with harness.sessions() as db:
        db.get(User, client.user_id).max_tickets = max_tickets
        db.commit()


def create_until_refused(client, githash, most=50):
    """Create tickets until the quota refuses one; returns (number created, the refusal)."""
    for created in range(most):
        response = client.post("/api/tickets", data={"githash": githash})
        if response.status_code != 200:
            return created, response
    raise AssertionError(f"{most} tickets and no refusal")


def test_the_tier_quota_is_the_seeded_one(harness):
    with harness.sessions() as db:
        assert db.get(UserTier, "guest").max_tickets == GUEST_QUOTA


def test_an_override_lower_than_the_tier(harness):
    githash = harness.service()
    client = harness.client(tier="guest")
    set_user_quota(harness, client, 2)
    created, refused = create_until_refused(client, githash)
    assert created == 2
    assert (refused.status_code, refused.data) == (
        400, b"Maximum allowed number of open tickets (2) exceeded.")


def test_an_override_higher_than_the_tier(harness):
    githash = harness.service()
    client = harness.client(tier="guest")
    set_user_quota(harness, client, GUEST_QUOTA + 3)
    created, refused = create_until_refused(client, githash)
    assert created == GUEST_QUOTA + 3
    assert refused.data == f"Maximum allowed number of open tickets ({GUEST_QUOTA + 3}) exceeded." \
        .encode()


def test_a_zero_override_refuses_every_ticket(harness):
    githash = harness.service()
    client = harness.client(tier="poweruser")
    set_user_quota(harness, client, 0)
    created, refused = create_until_refused(client, githash)
    assert created == 0 and b"(0) exceeded" in refused.data


def test_null_falls_back_to_the_tier(harness):
    githash = harness.service()
    client = harness.client(tier="guest")
    set_user_quota(harness, client, 1)
    assert create_until_refused(client, githash)[0] == 1
    set_user_quota(harness, client, None)
    created, refused = create_until_refused(client, githash)
    assert created == GUEST_QUOTA - 1  # one ticket is already open
    assert refused.data == f"Maximum allowed number of open tickets ({GUEST_QUOTA}) exceeded." \
        .encode()


def test_deleted_tickets_free_the_override(harness):
    githash = harness.service()
    client = harness.client(tier="guest")
    set_user_quota(harness, client, 1)
    ticket = int(client.post("/api/tickets", data={"githash": githash}).data)
    assert client.post("/api/tickets", data={"githash": githash}).status_code == 400
    assert client.get(f"/api/tickets/{ticket}/delete").data == b"deleted"
    assert client.post("/api/tickets", data={"githash": githash}).status_code == 200


def test_racing_creates_through_gunicorn_never_exceed_the_quota(gunicorn_server):  # noqa: F811 (fixture)
    """Many creates of one user at once, through two gunicorn workers on PostgreSQL: each one
    counts the open tickets only once the one before it committed, so exactly the quota is
    created and every other create is refused."""
    quota, racers = 3, 40
    githash, _, _ = seed_ready_tickets(gunicorn_server, 0)
    email = f"racer-{uuid.uuid4().hex[:8]}@example.org"
    cookies = login(gunicorn_server, email).cookies.get_dict()
    with gunicorn_server.sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
        user.max_tickets = quota
        db.commit()
        user_id = user.id
    start, answers = threading.Barrier(racers), []

    def create():
        start.wait()
        for _ in range(20):  # a 503 (the database refusing connections) is retried, as clients do
            answer = requests.post(f"{gunicorn_server.url}/api/tickets",
                                   data={"githash": githash}, cookies=cookies)
            if answer.status_code != 503:
                break
            time.sleep(float(answer.headers["Retry-After"]))
        answers.append(answer)

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refusal = f"Maximum allowed number of open tickets ({quota}) exceeded."
    assert sorted((a.status_code, a.text if a.status_code != 200 else "") for a in answers) == \
        [(200, "")] * quota + [(400, refusal)] * (racers - quota)
    with gunicorn_server.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Ticket)
                         .where(Ticket.user_id == user_id)) == quota
