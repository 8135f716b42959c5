"""HTTP mechanics of DSSClient against a scripted loopback server: errors, cookies, streaming."""
import io

import pytest
from werkzeug.formparser import parse_form_data

from client_loopback import Answer, LoopbackServer
from dss_client import DSSClient, DSSError, DSSTransientError
from dss_client.multipart import CHUNK_BYTES, MultipartFile
from helpers import free_port


def test_503_is_transient_with_retry_after():
    with LoopbackServer(lambda r: Answer(503, b"queue full", {"Retry-After": "7"})) as server:
        with pytest.raises(DSSTransientError) as caught:
            DSSClient(server.url).services()
    assert caught.value.status == 503 and caught.value.retry_after == 7.0
    assert "queue full" in str(caught.value)


def test_500_is_transient_and_400_is_not():
    with LoopbackServer(lambda r: Answer(500, b"internal server error")) as server:
        with pytest.raises(DSSTransientError) as caught:
            DSSClient(server.url).tickets()
    assert caught.value.status == 500 and caught.value.retry_after is None
    with LoopbackServer(lambda r: Answer(400, b"Ticket 9 not found for user 1")) as server:
        with pytest.raises(DSSError) as caught:
            DSSClient(server.url).status(9)
    assert not isinstance(caught.value, DSSTransientError)
    assert caught.value.status == 400 and caught.value.body == "Ticket 9 not found for user 1"


def test_anything_but_200_is_an_error_even_redirects_and_201():
    for status in (201, 204, 302):
        answer = Answer(status, b"", {"Location": "/elsewhere"})
        with LoopbackServer(lambda r, a=answer: a) as server:
            with pytest.raises(DSSError) as caught:
                DSSClient(server.url).delete(3)
        assert caught.value.status == status


def test_connection_refused_and_timeout_are_transient():
    with pytest.raises(DSSTransientError) as caught:
        DSSClient(f"http://127.0.0.1:{free_port()}").services()
    assert caught.value.status is None
    with LoopbackServer(lambda r: Answer(200, b"ready", delay=2.0)) as server:
        with pytest.raises(DSSTransientError):
            DSSClient(server.url, timeout=0.3).status(1)


def test_session_cookie_is_sent_and_replaced_by_the_server():
    sid = "ab" * 20

    def respond(request):
        if request.path == "/api/login":
            return Answer(200, b"logged in as a@b.org \n",
                          {"Set-Cookie": f"webpy_session_id={sid}; Path=/; HttpOnly"})
        return Answer(200, b"")

    with LoopbackServer(respond) as server:
        client = DSSClient(server.url + "/", session_id="cd" * 20)  # trailing slash tolerated
        client.tickets()
        assert client.login("tok") == "a@b.org"
        assert client.session_id == sid
        client.tickets()
    first, login, last = server.requests
    assert first.headers["Cookie"] == "webpy_session_id=" + "cd" * 20
    assert login.path == "/api/login" and login.body == b"token=tok"
    assert last.headers["Cookie"] == f"webpy_session_id={sid}"


def test_claim_sends_wait_and_reads_none():
    with LoopbackServer(lambda r: Answer(200, b"None")) as server:
        assert DSSClient(server.url).claim(["a" * 40, "b" * 40], "lab", wait=5) is None
    form = dict(pair.split("=") for pair in server.requests[0].body.decode().split("&"))
    assert form["services"] == "a" * 40 + "%2C" + "b" * 40
    assert form["provider"] == "lab" and form["code"] == "default" and form["wait"] == "5"


def test_ticket_by_githash_or_by_name():
    with LoopbackServer(lambda r: Answer(200, b"17")) as server:
        client = DSSClient(server.url)
        assert client.create_ticket("e0a316038e9cbe6a000e07c82758532a8863f51f") == 17
        assert client.create_ticket("LungSegmentation") == 17
    assert server.requests[0].body == b"githash=e0a316038e9cbe6a000e07c82758532a8863f51f"
    assert server.requests[1].body == b"name=LungSegmentation"


def _form(request):
    """The fields and files of a captured multipart request, parsed as a Flask server would."""
    _, form, files = parse_form_data({
        "REQUEST_METHOD": "POST", "CONTENT_TYPE": request.headers["Content-Type"],
        "CONTENT_LENGTH": str(len(request.body)), "wsgi.input": io.BytesIO(request.body)})
    return form, files


def test_upload_is_multipart_like_itksnap_with_content_length(tmp_path):
    file = tmp_path / "report, \"final\".json"
    file.write_bytes(b'{"nodules": []}')
    with LoopbackServer(lambda r: Answer(200, b"4")) as server:
        assert DSSClient(server.url).attach(3, file, "Nodule report", "application/json") == 4
    request = server.requests[0]
    assert request.path == "/api/pro/tickets/3/attachments"
    assert int(request.headers["Content-Length"]) == len(request.body)
    assert "Transfer-Encoding" not in request.headers
    form, files = _form(request)
    assert form["filename"] == file.name and form["submit"] == "send"
    assert form["desc"] == "Nodule report" and form["mime_type"] == "application/json"
    assert files["myfile"].read() == b'{"nodules": []}'


def test_upload_body_streams_the_file_in_chunks(tmp_path):
    file = tmp_path / "big.nii.gz"
    file.write_bytes(b"\1" * (3 * CHUNK_BYTES + 5))
    body = MultipartFile(file, {"filename": file.name, "submit": "send"})
    chunks = iter(body)
    head = next(chunks)
    assert b'name="myfile"; filename="big.nii.gz"' in head and len(head) < 1024
    sizes = [len(chunk) for chunk in chunks]
    assert max(sizes) <= CHUNK_BYTES and len(sizes) >= 4
    assert len(body) == len(head) + sum(sizes)


def test_download_keeps_server_names_inside_the_folder(tmp_path):
    listing = b"0,ticket_00000001_results.itksnap\r\n1,../../evil.sh\r\n"

    def respond(request):
        if request.path.endswith("/files/results"):
            return Answer(200, listing)
        return Answer(200, b"<registry/>")

    out = tmp_path / "a" / "out"
    with LoopbackServer(respond) as server:
        client = DSSClient(server.url)
        paths = client.download(1, "results", out)
        assert paths == [out / "ticket_00000001_results.itksnap", out / "evil.sh"]
        assert paths[0].read_bytes() == b"<registry/>"
        listing = b"0,..\r\n"
        with pytest.raises(DSSError, match="unsafe"):
            client.download(1, "results", out)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "evil.sh", "ticket_00000001_results.itksnap"]


def _small_image(path):
    import numpy as np
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(np.arange(64, dtype=np.int16).reshape(4, 4, 4)), str(path))
    return path


def test_submit_image_creates_uploads_export_and_marks_ready(tmp_path):
    image = _small_image(tmp_path / "ct.nii.gz")
    answers = {"/api/tickets": b"42", "/api/tickets/42/status": b"ready"}
    with LoopbackServer(lambda r: Answer(200, answers.get(r.path, b"success"))) as server:
        assert DSSClient(server.url).submit_workspace(image, "LungSegmentation") == 42
    paths = [r.path for r in server.requests]
    assert paths[0] == "/api/tickets" and paths[-1] == "/api/tickets/42/status"
    uploads = [r for r in server.requests if r.path == "/api/tickets/42/files/input"]
    names = sorted(_form(r)[0]["filename"] for r in uploads)
    assert len(uploads) == 2 and names[1] == "ticket_00000042.itksnap"
    assert names[0].startswith("layer_000_") and names[0].endswith(".nii.gz")


def test_submit_deletes_the_ticket_when_an_upload_fails(tmp_path):
    image = _small_image(tmp_path / "ct.nii.gz")

    def respond(request):
        if request.path.endswith("/files/input"):
            return Answer(400, b"bad request")
        return Answer(200, b"7" if request.path == "/api/tickets" else b"deleted")

    with LoopbackServer(respond) as server:
        with pytest.raises(DSSError):
            DSSClient(server.url).submit_workspace(image, "LungSegmentation")
    assert server.requests[-1].path == "/api/tickets/7/delete"


def test_a_download_cut_short_is_transient_and_leaves_no_file(tmp_path):
    def respond(request):
        if request.path.endswith("/files/results"):
            return Answer(200, b"0,result.nii.gz\r\n")
        return Answer(200, b"only part", {"Content-Length": "1000"})

    with LoopbackServer(respond) as server:
        with pytest.raises(DSSTransientError, match="interrupted"):
            DSSClient(server.url).download(5, "results", tmp_path)
    assert list(tmp_path.iterdir()) == []


UPLOAD_MEMORY_PROBE = """
import resource, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from dss_client import DSSClient

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        left = int(self.headers["Content-Length"])
        while left > 0:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=server.serve_forever, daemon=True).start()
client = DSSClient(f"http://127.0.0.1:{server.server_address[1]}")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert client.upload_input(1, sys.argv[1]) == "success"
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_uploading_a_large_file_keeps_memory_flat(tmp_path):
    """A 256 MB (sparse) file goes up with far less than its size in peak memory growth."""
    import subprocess
    import sys

    big = tmp_path / "big.nii.gz"
    with open(big, "wb") as out:
        out.truncate(256 * CHUNK_BYTES)
    result = subprocess.run([sys.executable, "-c", UPLOAD_MEMORY_PROBE, str(big)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 32 * CHUNK_BYTES


DOWNLOAD_MEMORY_PROBE = """
import resource, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from dss_client import DSSClient

SIZE = int(sys.argv[2])

class Source(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"0,big.nii.gz\\r\\n" if self.path.endswith("/results") else None
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) if body else SIZE))
        self.end_headers()
        if body:
            self.wfile.write(body)
            return
        block = bytes(1 << 20)
        for _ in range(SIZE >> 20):
            self.wfile.write(block)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Source)
threading.Thread(target=server.serve_forever, daemon=True).start()
client = DSSClient(f"http://127.0.0.1:{server.server_address[1]}")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
[path] = client.download(1, "results", sys.argv[1])
assert path.stat().st_size == SIZE
path.unlink()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_downloading_a_large_file_keeps_memory_flat(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", DOWNLOAD_MEMORY_PROBE, str(tmp_path),
                             str(256 * CHUNK_BYTES)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 32 * CHUNK_BYTES


def test_a_gzip_encoded_answer_is_decoded_in_text_and_downloads(tmp_path):
    import gzip

    def respond(request):
        if request.path.endswith("/files/results"):
            return Answer(200, gzip.compress(b"0,result.txt\r\n"), {"Content-Encoding": "gzip"})
        return Answer(200, gzip.compress(b"x" * 100_000), {"Content-Encoding": "gzip"})

    with LoopbackServer(respond) as server:
        [path] = DSSClient(server.url).download(5, "results", tmp_path)
    assert path.name == "result.txt" and path.read_bytes() == b"x" * 100_000
    assert "gzip" in server.requests[0].headers["Accept-Encoding"]


def test_one_client_serves_many_threads_without_pool_warnings(caplog):
    from concurrent.futures import ThreadPoolExecutor

    with LoopbackServer(lambda r: Answer(200, r.path.rsplit("/", 2)[-2].encode(), delay=0.05)) \
            as server:
        client = DSSClient(server.url)
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(client.status, range(48)))
        client.close()
    assert statuses == [str(i) for i in range(48)]
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def proxy_environment(monkeypatch):
    """No proxy variable from the machine running the tests; the test sets its own."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_the_proxy_comes_from_the_environment_as_with_requests(proxy_environment):
    from dss_client.transport import _proxy_for

    assert _proxy_for("https://dss.example.org") is None
    proxy_environment.setenv("HTTPS_PROXY", "proxy.lab:3128")
    proxy_environment.setenv("ALL_PROXY", "http://any.lab:8080")
    assert _proxy_for("https://dss.example.org/") == "http://proxy.lab:3128"
    assert _proxy_for("http://dss.example.org:8080") == "http://any.lab:8080"
    proxy_environment.setenv("NO_PROXY", "localhost,.example.org")
    assert _proxy_for("https://dss.example.org") is None
    assert _proxy_for("https://dss.example.net") == "http://proxy.lab:3128"


def test_requests_go_through_the_proxy_with_its_credentials(proxy_environment):
    with LoopbackServer(lambda r: Answer(200, b"ready")) as proxy:
        proxy_environment.setenv("HTTP_PROXY", proxy.url.replace("//", "//lab:s%40cret@"))
        assert DSSClient("http://dss.invalid:8080").status(3) == "ready"
    [request] = proxy.requests
    assert request.path == "http://dss.invalid:8080/api/tickets/3/status"
    assert request.headers["Proxy-Authorization"] == "Basic bGFiOnNAY3JldA=="  # lab:s@cret


def test_tls_is_verified_against_requests_ca_bundle(tmp_path, monkeypatch):
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=loopback",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = LoopbackServer(lambda r: Answer(200, b"ready"))
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    url = server.url.replace("http://", "https://")
    with server:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        with pytest.raises(DSSTransientError, match="cannot reach"):
            DSSClient(url).status(1)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert DSSClient(url).status(1) == "ready"


def test_a_large_download_is_reserved_then_cut_to_what_was_decoded(tmp_path):
    """Space for Content-Length is reserved up front; random data grows when gzipped, so the
    decoded file is shorter than the reserve and must end where its data ends."""
    import gzip
    import os

    data = os.urandom(17 << 20)
    packed = gzip.compress(data, compresslevel=1)
    assert len(packed) > len(data)

    def respond(request):
        if request.path.endswith("/files/results"):
            return Answer(200, b"0,big.bin\r\n")
        return Answer(200, packed, {"Content-Encoding": "gzip"})

    with LoopbackServer(respond) as server:
        [path] = DSSClient(server.url).download(5, "results", tmp_path)
    assert path.stat().st_size == len(data) and path.read_bytes() == data


def test_a_large_download_cut_short_leaves_no_reserved_file(tmp_path):
    def respond(request):
        if request.path.endswith("/files/results"):
            return Answer(200, b"0,big.bin\r\n")
        return Answer(200, b"only part", {"Content-Length": str(64 << 20)})

    with LoopbackServer(respond) as server:
        with pytest.raises(DSSTransientError, match="interrupted"):
            DSSClient(server.url).download(5, "results", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_or_empty_download_leaves_no_new_folder(tmp_path):
    listing = [b"0,result.nii.gz\r\n", b""]

    def respond(request):
        if request.path.endswith("/files/results"):
            return Answer(200, listing.pop(0))
        return Answer(200, b"only part", {"Content-Length": "1000"})

    with LoopbackServer(respond) as server:
        with pytest.raises(DSSTransientError, match="interrupted"):
            DSSClient(server.url).download(5, "results", tmp_path / "new" / "results")
        assert DSSClient(server.url).download(5, "results", tmp_path / "empty") == []
    assert list(tmp_path.iterdir()) == []
