"""Parsing of the DSS wire formats (spec 0.1): CSV with \\r\\n, bare text, `None`, JSON result."""
import pytest

from dss_client import wire
from dss_client.wire import WireFormatError


def test_csv_rows_use_crlf_and_no_header():
    body = "MRI-NeckCut,e0a316038e9cbe6a000e07c82758532a8863f51f,1.0.0,DSS example\r\n" \
           "Lungs,6e8775d4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,2.1.0,lung segmentation\r\n"
    services = wire.parse_services(body)
    assert [s.name for s in services] == ["MRI-NeckCut", "Lungs"]
    assert services[0].githash == "e0a316038e9cbe6a000e07c82758532a8863f51f"
    assert services[1].version == "2.1.0"


def test_csv_quoted_commas_doubled_quotes_and_newlines_survive():
    body = '7,2026-01-02 10:00:00.5,info,0,"Found 2 nodules, largest ""A"" 8 mm\r\nsecond line"\r\n'
    [entry] = wire.parse_log(body)
    assert entry.id == 7 and entry.attachments == 0 and entry.category == "info"
    assert entry.message == 'Found 2 nodules, largest "A" 8 mm\r\nsecond line'


def test_empty_listing_is_an_empty_list():
    assert wire.parse_files("") == []
    assert wire.parse_tickets("\r\n") == []


def test_files_listing_keeps_index_and_name():
    files = wire.parse_files("0,layer_000_abc.nii.gz\r\n1,ticket_00000003.itksnap\r\n")
    assert files == [(0, "layer_000_abc.nii.gz"), (1, "ticket_00000003.itksnap")]
    assert files[1].name == "ticket_00000003.itksnap"


def test_claim_none_is_nothing_and_a_row_is_a_claim():
    assert wire.parse_claim("None") is None
    claim = wire.parse_claim("17,b7392368dc5dcec910bb8b87006ae38fd1f2cb32,claimed\r\n")
    assert claim == (17, "b7392368dc5dcec910bb8b87006ae38fd1f2cb32", "claimed")
    assert claim.ticket_id == 17


def test_claim_with_several_rows_is_refused():
    with pytest.raises(WireFormatError):
        wire.parse_claim("1,a,claimed\r\n2,b,claimed\r\n")


def test_available_and_provider_services_columns():
    available = wire.parse_available("e0a3,MRI-NeckCut,2\r\nb739,RegistrationExample,1\r\n")
    assert available[0] == ("e0a3", "MRI-NeckCut", 2) and available[1].ready == 1
    assert wire.parse_available("") == []
    [service] = wire.parse_provider_services("Lungs,1.0.0,abc,testlab\r\n")
    assert service.provider == "testlab" and service.githash == "abc"


def test_admin_services_have_version_before_githash():
    [service] = wire.parse_admin_services("Lungs,1.0.0,abcdef,short, with comma\r\n")
    assert service.version == "1.0.0" and service.githash == "abcdef"


def test_admin_rows_read_booleans_and_empty_durations():
    users = wire.parse_provider_users("3,a@x.org,True\r\n4,b@x.org,0\r\n")
    assert [u.admin for u in users] == [True, False]
    tickets = wire.parse_admin_tickets("5,a@x.org,Lungs,success,2.5\r\n6,a@x.org,Lungs,init,\r\n")
    assert tickets[0].duration == 2.5 and tickets[1].duration is None


def test_scalars_are_bare_text():
    assert wire.parse_int("17") == 17
    assert wire.parse_float("0.30000000000000004") == pytest.approx(0.3)
    assert wire.parse_text("ready") == "ready"
    with pytest.raises(WireFormatError):
        wire.parse_int("bad request")


def test_login_text_and_json():
    assert wire.parse_login("logged in as test@example.com \n") == "test@example.com"
    assert wire.parse_login('{"result": {"email": "a@b.org"}}') == "a@b.org"
    with pytest.raises(WireFormatError):
        wire.parse_login("unauthorized")


def test_json_result_wrapping():
    assert wire.parse_result('{"result": {"status": "ready", "queue_position": 3}}')["queue_position"] == 3
    with pytest.raises(WireFormatError):
        wire.parse_result('{"status": "ready"}')
    with pytest.raises(WireFormatError):
        wire.parse_result("<html>")


def test_stats_accept_a_row_list_or_an_object():
    assert wire.parse_stats('{"result": [{"n_success": 2}]}') == {"n_success": 2}
    assert wire.parse_stats('{"result": {"n_failed": 1}}') == {"n_failed": 1}


def test_short_rows_are_refused_with_a_reason():
    with pytest.raises(WireFormatError, match="tickets"):
        wire.parse_tickets("17,Lungs\r\n")
