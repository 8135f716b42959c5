"""The claim order (issue 15 item 3): fair share between owners, then tier priority and age.

Each test runs on PostgreSQL (the one claim statement) and on embedded SQLite (the ORM pick).
"""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from dss_server import create_app
from dss_server.config import ConfigError, load_config
from dss_server.models import ClaimHistory, TicketHistory, utcnow
from web_support import Harness, explain_claim, make_config


@pytest.fixture(params=["postgresql", "sqlite"])
def make(request, migrated_db, tmp_path):
    """A harness factory on the parametrised database; keyword arguments override settings."""
    url = migrated_db if request.param == "postgresql" else f"sqlite:///{tmp_path / 'e.sqlite3'}"
    return lambda **overrides: Harness(create_app(make_config(url, tmp_path, **overrides)))


def claim(provider, githash):
    response = provider.post("/api/pro/services/claims",
                             data={"services": githash, "provider": provider.provider, "code": "c"})
    assert response.status_code == 200, response.data
    return None if response.data == b"None" else int(response.data.split(b",")[0])


def set_ready_time(harness, ticket, when):
    with harness.sessions() as db:
        db.execute(update(TicketHistory).where(TicketHistory.ticket_id == ticket,
                                               TicketHistory.status == "ready").values(atime=when))
        db.commit()


def setup(harness, lab):
    githash = harness.service(provider=lab)
    return githash, harness.provider_client(lab)


def test_an_owner_with_five_tickets_in_flight_loses_to_one_with_none(make):
    harness = make()
    githash, provider = setup(harness, "fairlab1")
    batch, single = harness.client(), harness.client()
    batch_tickets = [harness.submit(batch, githash) for _ in range(6)]
    assert [claim(provider, githash) for _ in range(5)] == batch_tickets[:5]
    late = harness.submit(single, githash)  # a higher id, and ready last
    assert claim(provider, githash) == late
    assert claim(provider, githash) == batch_tickets[5]
    assert claim(provider, githash) is None


def test_fifo_order_takes_the_lowest_id_whoever_owns_it(make):
    harness = make(claim_order="fifo")
    githash, provider = setup(harness, "fifolab")
    batch, single = harness.client(), harness.client()
    batch_tickets = [harness.submit(batch, githash) for _ in range(3)]
    claim(provider, githash)
    harness.submit(single, githash)
    assert claim(provider, githash) == batch_tickets[1]


def test_tier_priority_minutes_count_as_extra_waiting(make):
    """A poweruser (60 min) ready 20 min after a guest (30 min) goes first; 40 min after, not."""
    harness = make()
    githash, provider = setup(harness, "tierlab")
    guest, power = harness.client(tier="guest"), harness.client(tier="poweruser")
    base = utcnow() - timedelta(hours=2)
    for later, first in ((20, "power"), (40, "guest")):
        tickets = {"guest": harness.submit(guest, githash), "power": harness.submit(power, githash)}
        set_ready_time(harness, tickets["guest"], base)
        set_ready_time(harness, tickets["power"], base + timedelta(minutes=later))
        assert claim(provider, githash) == tickets[first]
        assert claim(provider, githash) == tickets["guest" if first == "power" else "power"]
        for ticket in tickets.values():  # back to no tickets in flight for the next round
            assert provider.post(f"/api/pro/tickets/{ticket}/status",
                                 data={"status": "success"}).data == b"success"


def test_between_equal_owners_the_earlier_ready_goes_first_then_the_lower_id(make):
    harness = make()
    githash, provider = setup(harness, "agelab")
    first_owner, second_owner = harness.client(), harness.client()
    low, high = harness.submit(first_owner, githash), harness.submit(second_owner, githash)
    base = utcnow() - timedelta(minutes=10)
    set_ready_time(harness, low, base + timedelta(minutes=1))
    set_ready_time(harness, high, base)
    assert claim(provider, githash) == high
    third_owner = harness.client()
    again = harness.submit(third_owner, githash)
    set_ready_time(harness, again, base + timedelta(minutes=1))  # same time as `low`
    # `second_owner` has one in flight now; `low` and `again` tie on time: the lower id wins
    assert claim(provider, githash) == low
    assert claim(provider, githash) == again


def test_concurrent_fair_claims_take_every_ticket_once_in_turns(harness):
    """Eight claimers over three owners' 60, 20 and 10 tickets (in that id order) on
    PostgreSQL: none lost, none twice, and, as no ticket finishes, the owners take turns, so the
    10 are all claimed in about the first 30 claims (lowest id first: the last 10 of 90)."""
    githash, provider = setup(harness, "racelab")
    owners = [harness.client() for _ in range(3)]
    ids = {}
    with harness.sessions() as db:
        for owner, count in zip(owners, (60, 20, 10)):
            ids[owner.user_id] = db.scalars(text(
                "WITH new AS (INSERT INTO tickets (user_id, service_githash, status, attempts) "
                "SELECT :owner, :githash, 'ready', 0 FROM generate_series(1, :count) "
                "RETURNING id) INSERT INTO ticket_history (ticket_id, status, atime) "
                "SELECT id, 'ready', now() AT TIME ZONE 'UTC' FROM new RETURNING ticket_id"),
                {"owner": owner.user_id, "githash": githash, "count": count}).all()
        db.commit()
    clients = [harness.provider_client("racelab") for _ in range(8)]
    claimed, errors = [], []

    def claimer(client):
        try:
            while (ticket := claim(client, githash)) is not None:
                claimed.append(ticket)
        except AssertionError as error:
            errors.append(error)

    threads = [threading.Thread(target=claimer, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    every = sorted(ticket for owned in ids.values() for ticket in owned)
    assert errors == []
    assert sorted(claimed) == every
    with harness.sessions() as db:
        in_claim_order = db.scalars(select(ClaimHistory.ticket_id)
                                    .where(ClaimHistory.ticket_id.in_(every))
                                    .order_by(ClaimHistory.id)).all()
    assert sorted(in_claim_order) == every
    assert set(ids[owners[2].user_id]) <= set(in_claim_order[:40])


def test_fair_claim_reads_one_probe_per_owner_however_long_the_queue(harness):
    """2,000 ready tickets of three owners: the plan reads one ready row per owner, not the
    queue, and the tickets in flight once."""
    githash, provider = setup(harness, "planlab")
    owners = [harness.client() for _ in range(3)]
    with harness.sessions() as db:
        db.execute(text(
            "INSERT INTO tickets (user_id, service_githash, status, attempts) "
            "SELECT (:owners)[1 + n % 3], :githash, 'ready', 0 FROM generate_series(1, 2000) n"),
            {"owners": [owner.user_id for owner in owners], "githash": githash})
        db.commit()
        db.execute(text("ANALYZE tickets"))
        in_flight = db.scalar(text("SELECT count(*) FROM tickets WHERE status = 'claimed'"))
        every = explain_claim(db, "fair", [githash], "planlab", provider.user_id)
    ready = [node for node in every if node.get("Index Name") == "ix_tickets_ready_user"]
    assert max(node["Actual Rows"] * node["Actual Loops"] for node in ready) <= len(owners) + 1
    tickets = [node for node in every if node.get("Relation Name") == "tickets"]
    assert max(node["Actual Rows"] * node["Actual Loops"] for node in tickets) <= max(
        len(owners) + 1, in_flight)  # the claimed tickets other tests left, read once
    assert not any(node.get("Rows Removed by Filter") for node in tickets)


@pytest.mark.parametrize("value, expected", [("", "fair"), ("FIFO", "fifo"), ("fair", "fair")])
def test_claim_order_setting(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv("DSS_CLAIM_ORDER", value)
    assert load_config(var_dir=tmp_path, noauth=True).claim_order == expected


def test_an_unknown_claim_order_stops_the_server(monkeypatch, tmp_path):
    monkeypatch.setenv("DSS_CLAIM_ORDER", "random")
    with pytest.raises(ConfigError, match="DSS_CLAIM_ORDER='random': expected one of fair, fifo"):
        load_config(var_dir=tmp_path, noauth=True)
