"""Admin input at the edges of what the server can represent: a clear 4xx, never a 500."""
import pytest


@pytest.fixture
def admin(harness):
    return harness.client(admin=True)


LIMIT = b"The purge interval must be at most 36525 days (100 years)"


def test_the_purge_interval_ends_at_100_years(admin):
    url = "/api/admin/tickets/purge/completed"
    assert admin.post(url, data={"days": "36525"}).data == b"Purged 0 tickets"
    refused = admin.post(url, data={"days": "36526"})
    assert (refused.status_code, refused.data) == (400, LIMIT)


@pytest.mark.parametrize("form", [{"days": "99999999"}, {"hours": "99999999"}])
def test_a_purge_interval_too_long_to_compute_is_refused(admin, form):
    response = admin.post("/api/admin/tickets/purge/all", data=form)
    assert (response.status_code, response.data) == (400, LIMIT)
