"""/metrics: the families of dss_server.metrics, with values that follow real requests.

Real servers on loopback (the development server, and gunicorn with two workers in
prometheus_client's multiprocess mode), NOAUTH, a fresh PostgreSQL database.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from dss_client import DSSClient, DSSError
from dss_server.metrics import DatabaseCollector
from helpers import PYTHON, ServerProcess, free_port, service_repo

PROVIDER = "metricslab"
# Generous limits: CI runs on two shared cores, where a worker can take long to start or answer.
SLOW_START = 180
SLOW_ANSWER = 60
NOAUTH_ADMIN = "test@example.com"


def _service_repo(root, name):
    return service_repo(root / "service-repo", {
        "name": name, "version": "1.0.0", "shortdesc": "metrics test service", "tags": []})[0]


def _server_env(database_url, workdir, port):
    return {"DATABASE_URL": database_url, "PORT": str(port), "ITK_SNAP_SERVER_NOAUTH": "1",
            "DSS_DATASTORE": str(workdir / "datastore")}


def _migrate(env, workdir):
    subprocess.run([PYTHON, "-m", "dss_server", "migrate"], env={**os.environ, **env},
                   cwd=workdir, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def server(make_database, tmp_path_factory):
    """A NOAUTH server with one registered service; yields (url, githash)."""
    workdir = tmp_path_factory.mktemp("metrics")
    port = free_port()
    env = _server_env(make_database("dss_metrics"), workdir, port)
    _migrate(env, workdir)
    url = f"http://127.0.0.1:{port}"
    with ServerProcess([PYTHON, "-m", "dss_server", "run"], env, f"{url}/healthz",
                       workdir / "server.log", cwd=workdir, timeout=SLOW_START):
        admin = DSSClient(url)  # cookieless: the NOAUTH admin
        admin.add_provider(PROVIDER)
        admin.add_provider_user(PROVIDER, NOAUTH_ADMIN)
        githash = admin.register_service(PROVIDER, str(_service_repo(workdir, "MetricsSeg")))
        yield url, githash


def scrape(url) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = requests.get(f"{url}/metrics", timeout=SLOW_ANSWER)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, metric, /, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_database_figures_follow_the_tickets(server):
    url, githash = server
    client = DSSClient(url)
    ready = [client.create_ticket(githash) for _ in range(2)]
    for ticket_id in ready:
        client.mark_ready(ticket_id)
    client.create_ticket(githash)  # stays init

    samples = scrape(url)
    assert value(samples, "dss_metrics_database_up") == 1
    assert value(samples, "dss_service_info", service=githash, name="MetricsSeg",
                 version="1.0.0", current="true") == 1
    assert value(samples, "dss_tickets", service=githash, status="ready") == 2
    assert value(samples, "dss_tickets", service=githash, status="init") == 1
    assert value(samples, "dss_queue_depth", service=githash) == 2
    assert 0 <= value(samples, "dss_oldest_ready_age_seconds", service=githash) < 600

    claim = client.claim([githash], provider=PROVIDER)
    assert claim.ticket_id == ready[0]
    samples = scrape(url)
    assert value(samples, "dss_tickets", service=githash, status="ready") == 1
    assert value(samples, "dss_tickets", service=githash, status="claimed") == 1
    assert value(samples, "dss_queue_depth", service=githash) == 1

    client.claim([githash], provider=PROVIDER)
    samples = scrape(url)
    assert value(samples, "dss_queue_depth", service=githash) == 0
    assert value(samples, "dss_oldest_ready_age_seconds", service=githash) == 0


def test_claims_and_finished_tickets_are_observed(server):
    url, githash = server
    client = DSSClient(url)
    before = scrape(url)
    ticket_id = client.create_ticket(githash)
    client.mark_ready(ticket_id)
    assert client.claim([githash], provider=PROVIDER).ticket_id == ticket_id
    client.set_status(ticket_id, "failed")

    after = scrape(url)
    claims = value(after, "dss_claim_duration_seconds_count") - value(
        before, "dss_claim_duration_seconds_count")
    assert claims == 1
    finished = dict(service=githash, status="failed")
    assert value(after, "dss_ticket_duration_seconds_count", **finished) - value(
        before, "dss_ticket_duration_seconds_count", **finished) == 1
    assert value(after, "dss_ticket_duration_seconds_sum", **finished) >= 0


def test_http_latency_by_endpoint_method_and_status(server):
    url, githash = server
    client = DSSClient(url)
    created = dict(endpoint="tickets.create", method="POST", status="200")
    refused = dict(endpoint="tickets.create", method="POST", status="400")
    before = scrape(url)
    for _ in range(3):
        client.create_ticket(githash)
    with pytest.raises(DSSError):
        client.create_ticket("NoSuchService")
    assert requests.get(f"{url}/api/no/such/route", timeout=SLOW_ANSWER).status_code == 404

    after = scrape(url)
    count = "dss_http_request_duration_seconds_count"
    assert value(after, count, **created) - value(before, count, **created) == 3
    assert value(after, count, **refused) - value(before, count, **refused) == 1
    assert value(after, count, endpoint="unmatched", method="GET", status="404") >= 1
    assert value(after, "dss_http_request_duration_seconds_sum", **created) > 0
    assert value(after, "dss_http_request_duration_seconds_bucket", le="+Inf", **created) == \
        value(after, count, **created)


def test_gunicorn_workers_share_their_histograms(make_database, tmp_path):
    """Multiprocess mode: whichever worker answers the scrape counts every worker's requests."""
    port = free_port()
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    env = {**_server_env(make_database("dss_metrics_mp"), tmp_path, port),
           "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    _migrate(env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    gunicorn = [PYTHON, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
                "--threads", "4", "--timeout", "120", "--bind", f"127.0.0.1:{port}",
                "dss_server:create_app()"]
    with ServerProcess(gunicorn, env, f"{url}/healthz", tmp_path / "gunicorn.log", cwd=tmp_path,
                       timeout=SLOW_START):
        _wait_until_both_workers_answered(url, multiproc_dir)
        for _ in range(40):  # a new connection each time, so both workers get some
            assert requests.get(f"{url}/api/tickets", timeout=SLOW_ANSWER).status_code == 200
        counts = {value(scrape(url), "dss_http_request_duration_seconds_count",
                        endpoint="tickets.list_tickets", method="GET", status="200")
                  for _ in range(6)}
        assert counts == {40}


def _wait_until_both_workers_answered(url, multiproc_dir):
    """On a busy machine the second worker may still be loading the app long after the first one
    answers: ask /healthz until each worker's own histogram file has counted one."""
    deadline = time.monotonic() + SLOW_START
    while _workers_that_answered_healthz(multiproc_dir) < 2:
        assert time.monotonic() < deadline, "the second gunicorn worker never answered"
        assert requests.get(f"{url}/healthz", timeout=SLOW_ANSWER).status_code == 200


def _workers_that_answered_healthz(multiproc_dir) -> int:
    return sum(
        any('"health.healthz"' in key and count > 0
            for key, count, *_ in MmapedDict.read_all_values_from_file(str(path)))
        for path in multiproc_dir.glob("histogram_*.db"))


def test_unreachable_database_is_reported_not_raised():
    """A scrape while the database is down still answers, with dss_metrics_database_up 0."""
    engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none",
                           connect_args={"connect_timeout": 2})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(sessionmaker(bind=engine)))
    families = {family.name: family for family in text_string_to_metric_families(
        generate_latest(registry).decode())}
    assert set(families) == {"dss_metrics_database_up"}
    assert families["dss_metrics_database_up"].samples[0].value == 0
