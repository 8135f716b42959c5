"""Bad input gets a clear 4xx with a reason, never a 500 or a stack trace."""
import pytest

from web_support import upload


@pytest.fixture
def ticket_setup(harness):
    githash = harness.service(provider="badlab")
    user = harness.client()
    ticket = int(user.post("/api/tickets", data={"githash": githash}).data)
    return harness, user, ticket


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.nii",
                                  "a\x00b.nii", "line\nbreak", "..", "."])
def test_traversal_and_control_names_are_400(ticket_setup, name):
    harness, user, ticket = ticket_setup
    response = upload(user, f"/api/tickets/{ticket}/files/input", name, b"data")
    assert response.status_code == 400, (name, response.data)
    assert not list((harness.datastore / "tmp").glob("upload-*")), "the partial upload is removed"
    assert user.get(f"/api/tickets/{ticket}/files/input").data == b""


@pytest.mark.parametrize("name", ["..\\..\\win.ini", "C:\\Windows\\win.ini"])
def test_windows_paths_are_refused_or_cut_to_their_basename(ticket_setup, name):
    harness, user, ticket = ticket_setup
    response = upload(user, f"/api/tickets/{ticket}/files/input", name, b"data")
    if response.status_code == 200:  # werkzeug's multipart parser already mangled the path
        listed = user.get(f"/api/tickets/{ticket}/files/input").data.decode()
        assert listed.startswith("0,") and "/" not in listed and "\\" not in listed
    else:
        assert response.status_code == 400
    stored = [p for p in harness.datastore.rglob("*.ini")]
    area = harness.datastore / "tickets" / f"{ticket:08d}" / "input"
    assert all(p.parent == area for p in stored)


def test_subfolder_names_keep_their_basename(ticket_setup):
    harness, user, ticket = ticket_setup
    assert upload(user, f"/api/tickets/{ticket}/files/input", "dir\\sub/ws.itksnap", b"x").data == b"success"
    assert user.get(f"/api/tickets/{ticket}/files/input").data == b"0,ws.itksnap\r\n"


def test_oversize_upload_is_413_with_a_reason(make_harness):
    harness = make_harness(max_upload_bytes=1000)
    user = harness.client()
    ticket = int(user.post("/api/tickets", data={"githash": harness.service()}).data)
    response = upload(user, f"/api/tickets/{ticket}/files/input", "big.nii", b"x" * 5000)
    assert response.status_code == 413
    assert b"maximum upload size of 1000 bytes" in response.data
    assert not list((harness.datastore / "tmp").glob("upload-*"))
    assert upload(user, f"/api/tickets/{ticket}/files/input", "ok.nii", b"x" * 1000).data == b"success"


def test_upload_without_myfile_and_malformed_multipart(ticket_setup):
    harness, user, ticket = ticket_setup
    url = f"/api/tickets/{ticket}/files/input"
    missing = user.post(url, data={"filename": "x"}, content_type="multipart/form-data")
    assert missing.status_code == 400 and b"myfile" in missing.data
    garbage = user.post(url, data=b"--nope\r\n\r\n", content_type="multipart/form-data; boundary=zzz")
    assert 400 <= garbage.status_code < 500
    cut_off = (b'--zzz\r\nContent-Disposition: form-data; name="myfile"; filename="a.nii"\r\n\r\n'
               b"half of the file")  # the client died: no closing boundary
    truncated = user.post(url, data=cut_off, content_type="multipart/form-data; boundary=zzz")
    assert truncated.status_code == 400 and truncated.data.startswith(b"Malformed multipart body")
    assert user.get(url).data == b"" and not list((harness.datastore / "tmp").glob("upload-*"))
    plain = user.post(url, data=b"just text", content_type="text/plain")
    assert plain.status_code == 400


def test_bad_file_indexes(ticket_setup):
    harness, user, ticket = ticket_setup
    upload(user, f"/api/tickets/{ticket}/files/input", "a.nii", b"a")
    assert user.get(f"/api/tickets/{ticket}/files/input/1").status_code == 404
    assert user.get(f"/api/tickets/{ticket}/files/input/-1").status_code == 404
    assert user.get(f"/api/tickets/{ticket}/files/input/abc").status_code == 400
    assert user.get(f"/api/tickets/{ticket}/files/other").status_code == 404
    assert user.get(f"/api/tickets/{ticket}/files/input/99999999999999999999").status_code == 404


def test_ids_out_of_range_and_not_numbers(ticket_setup):
    harness, user, ticket = ticket_setup
    assert user.get("/api/tickets/99999999999999999999/status").status_code == 400
    assert user.get("/api/tickets/abc/status").status_code == 404
    assert user.get("/api/tickets/logs/99999999999/attachments").status_code == 400
    assert user.get("/api/services/ZZZ/detail").status_code == 400


def test_non_utf8_form_bytes(ticket_setup):
    harness, user, ticket = ticket_setup
    user.post(f"/api/tickets/{ticket}/status", data={"status": "ready"})
    provider = harness.provider_client("badlab")
    with harness.sessions() as db:
        from dss_server.models import Ticket
        githash = db.get(Ticket, ticket).service_githash
    provider.post("/api/pro/services/claims", data={"services": githash, "provider": "badlab"})
    response = provider.post(f"/api/pro/tickets/{ticket}/info", data=b"message=caf\xe9 ok",
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    log = user.get(f"/api/tickets/{ticket}/log").data.decode()
    assert "café ok" in log
    login = harness.app.test_client().post("/api/login", data=b"token=\xff\xfe",
                                           content_type="application/x-www-form-urlencoded")
    assert login.status_code == 401


def test_unknown_routes_and_methods(harness):
    client = harness.client()
    assert (client.get("/api/nothing").status_code, client.get("/api/nothing").data) == (404, b"not found")
    assert client.delete("/api/tickets").status_code == 405
    assert client.get("/api/pro/services/abc/tickets").status_code == 404
    assert client.get("/api/nothing?format=json").data == b"not found"  # the original's text
    as_json = client.get("/api/nothing", headers={"Accept": "application/json"})
    assert as_json.json == {"error": "not found"}


def test_double_slashes_route_without_redirect(harness):
    client = harness.client()
    # (the test client would read "//api" as a host; real servers are tested in test_http_server)
    response = client.get("/", environ_overrides={"PATH_INFO": "//api//login"})
    assert response.status_code == 200 and response.data.startswith(b"logged in as ")


def test_overlong_claim_names_and_githash_lists(harness):
    githash = harness.service(provider="longlab")
    provider = harness.provider_client("longlab")
    url = "/api/pro/services/claims"
    too_long = provider.post(url, data={"services": githash, "provider": "p" * 79})
    assert too_long.status_code == 400 and b"at most 78" in too_long.data
    assert provider.post(url, data={"services": githash, "provider": "p", "code": "c" * 79}).status_code == 400
    weird = provider.post(url, data={"services": "x" * 5000 + ",,", "provider": "p"})
    assert weird.status_code == 401


@pytest.mark.parametrize("since", ["99999999999999999999", "-5", "1.5", ""])
def test_odd_since_values(ticket_setup, since):
    harness, user, ticket = ticket_setup
    assert user.get(f"/api/tickets/{ticket}/log?since={since}").status_code == 200
    assert user.get(f"/api/tickets/{ticket}/detail?since={since}").status_code == 200


@pytest.mark.parametrize("form", [{"days": "1e400"}, {"days": "nan"}, {"hours": "-1"}, {"days": "inf"}])
def test_odd_purge_intervals(harness, form):
    admin = harness.client(admin=True)
    assert admin.post("/api/admin/tickets/purge/completed", data=form).status_code == 400


def test_nul_characters_in_parameters_are_400(ticket_setup):
    """PostgreSQL text cannot hold NUL: form, query and multipart values are refused up front."""
    harness, user, ticket = ticket_setup
    admin = harness.client(admin=True)
    nul_requests = [
        (admin, "post", "/api/admin/providers/badlab/users", {"data": {"email": "a\x00b"}}),
        (admin, "post", "/api/admin/providers", {"data": {"name": "lab\x00x"}}),
        (user, "post", "/api/tickets", {"data": {"githash": "abc", "name": "a\x00b"}}),
        (user, "post", f"/api/tickets/{ticket}/status", {"data": {"status": "re\x00ady"}}),
        (user, "get", "/api/tickets", {"query_string": {"since": "1\x00"}}),
        (user, "post", "/api/login", {"data": {"tok\x00en": "x"}}),
    ]
    for client, method, url, kwargs in nul_requests:
        response = getattr(client, method)(url, **kwargs)
        assert response.status_code == 400, (url, response.data)
        assert b"NUL character" in response.data, (url, response.data)
    multipart = upload(user, f"/api/tickets/{ticket}/files/input", "ok.nii", b"data",
                       filename="a\x00b")
    assert multipart.status_code == 400 and b"NUL character" in multipart.data
    page = admin.post("/admin/providers", data={"name": "x\x00y"})
    assert page.status_code == 400
    for url in ("/api/admin/providers/%00/users", "/api/admin/providers/a%00b/delete",
                "/admin/providers/%00"):
        in_path = admin.get(url)
        assert in_path.status_code == 400 and b"NUL character" in in_path.data, url
    assert user.get(f"/api/tickets/{ticket}/status").data == b"init", "nothing changed"


def test_names_over_255_bytes_are_400_and_long_attachment_extensions_are_dropped(harness):
    githash = harness.service(provider="longlab")
    user, provider = harness.client(), harness.provider_client("longlab")
    ticket = int(user.post("/api/tickets", data={"githash": githash}).data)
    for name in ("\u00e9" * 128, "x" * 256):  # 256 bytes of UTF-8, 128 or 256 characters
        response = upload(user, f"/api/tickets/{ticket}/files/input", name, b"data")
        assert response.status_code == 400 and b"longer than 255 bytes" in response.data, name
    assert upload(user, f"/api/tickets/{ticket}/files/input", "\u00e9" * 127 + ".",
                  b"data").data == b"success"
    user.post(f"/api/tickets/{ticket}/status", data={"status": "ready"})
    provider.post("/api/pro/services/claims", data={"services": githash, "provider": "longlab"})
    attached = upload(provider, f"/api/pro/tickets/{ticket}/attachments", "a." + "b" * 250,
                      b"note", desc="long name")
    assert attached.status_code == 200, attached.data
    [stored] = (harness.datastore / "attachments" / f"{ticket:08d}").iterdir()
    assert len(stored.name) == 32  # the uuid alone


def test_two_files_in_one_upload_are_400_not_one_silently_dropped(ticket_setup):
    import io
    harness, user, ticket = ticket_setup
    both = user.post(f"/api/tickets/{ticket}/files/input", content_type="multipart/form-data",
                     data={"myfile": [(io.BytesIO(b"a"), "a.nii"), (io.BytesIO(b"b"), "b.nii")]})
    assert (both.status_code, both.data) == (400, b"One file per upload: the body has 2 'myfile' parts")
    assert user.get(f"/api/tickets/{ticket}/files/input").data == b""


def test_too_many_form_parts_is_a_413_that_names_the_form(ticket_setup):
    import io
    harness, user, ticket = ticket_setup
    fields = {f"f{i}": "x" for i in range(1001)}
    response = user.post(f"/api/tickets/{ticket}/files/input", content_type="multipart/form-data",
                         data={**fields, "myfile": (io.BytesIO(b"a"), "a.nii")})
    assert response.status_code == 413
    assert response.data == b"Form too large: a text field over 4194304 bytes, or more than 1000 parts"
