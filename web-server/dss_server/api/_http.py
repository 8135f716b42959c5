"""Request glue shared by the blueprints: DB session, identity, parameters, uploads, downloads."""
from __future__ import annotations

import select
import socket
from pathlib import Path
from typing import Literal, cast, overload
from urllib.parse import parse_qsl, quote, urlsplit

from flask import Request, current_app, g, request, send_file
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import ClientDisconnected
from werkzeug.formparser import FormDataParser, MultiPartParser
from werkzeug.utils import cached_property

from ..config import Config
from ..errors import BodyStalled, CrossSiteRefused, Invalid, NotLoggedIn
from ..services import auth, leases
from ..services.access import require_admin
from ..services.files import UploadFile, upload_dir

API_PREFIX = "/api/"
SESSION_COOKIE = "webpy_session_id"
ONE_YEAR = 365 * 24 * 3600
MULTIPART_READ_BYTES = 1024 * 1024


def refuse_nul(values: MultiDict) -> MultiDict:
    """PostgreSQL text cannot hold a NUL character: such a parameter is a 400, not a crash."""
    for name, value in values.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise Invalid(f"Parameter '{name.replace(chr(0), '?')}' contains a NUL character")
    return values


class LenientFormParser(FormDataParser):
    """Multipart bodies are read in 1 MiB steps (werkzeug's 64 KiB makes large uploads slow).
    Urlencoded bodies that are not UTF-8 (itksnap-wt sends values raw, e.g. Latin-1 text) are
    read as Latin-1 instead of being dropped silently. A body that stops arriving is a 408."""

    def parse(self, stream, mimetype, content_length, options=None):
        try:
            return super().parse(stream, mimetype, content_length, options)
        except ClientDisconnected as exc:
            if not isinstance(exc.__context__, TimeoutError):  # the socket timeout gworker sets
                raise
            raise BodyStalled("The request body stopped arriving: no data for "
                              f"{config().body_timeout:g} s") from None

    def _parse_multipart(self, stream, mimetype, content_length, options):
        parser = MultiPartParser(stream_factory=self.stream_factory,
                                 max_form_memory_size=self.max_form_memory_size,
                                 max_form_parts=self.max_form_parts, cls=self.cls,
                                 buffer_size=MULTIPART_READ_BYTES)
        boundary = options.get("boundary", "")
        if not boundary or not boundary.isascii():
            raise Invalid("Malformed multipart body (no usable boundary)")
        try:
            form, files = parser.parse(stream, boundary.encode("ascii"), content_length)
        except ValueError as exc:  # werkzeug would drop the whole body silently
            raise Invalid(f"Malformed multipart body ({exc})") from None
        return stream, refuse_nul(form), files

    def _parse_urlencoded(self, stream, mimetype, content_length, options):
        raw = stream.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        items = parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")
        return stream, refuse_nul(self.cls(items)), self.cls()


class DSSRequest(Request):
    """Multipart file parts stream straight into the datastore's tmp folder, hashed and capped."""

    form_data_parser_class = LenientFormParser

    @cached_property
    def args(self) -> MultiDict:
        return refuse_nul(super().args)

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        upload = UploadFile(upload_dir(config().datastore), config().max_upload_bytes,
                            total_content_length, heartbeat=g.get("upload_heartbeat"))
        g.setdefault("uploads", []).append(upload)
        return upload


def config() -> Config:
    return current_app.config["DSS"]


def claim_policy() -> leases.ClaimPolicy:
    cfg = config()
    return leases.ClaimPolicy(cfg.claim_lease, cfg.max_attempts, cfg.datastore, cfg.claim_order)


def db():
    if "db" not in g:
        g.db = current_app.extensions["dss_sessions"]()
    return g.db


def autocommit_pool():
    """The pool of autocommit connections (db.make_autocommit_engine) that the identity read and
    the claim use; None on SQLite. Only those services touch its connections."""
    return current_app.extensions["dss_autocommit"]


def commit_now() -> None:
    """End the request's unit of work early, committing what it did so far; the request cycle
    (create_app's _finish_transaction) owns the rest. Only for work that must outlive or precede
    the rest of the request: what an answer of 4xx must not undo (an expired lease, a failed
    login's logout), what a claim's statement on another connection must see, and an upload's
    checks, so that no row lock or connection is held while its body arrives."""
    db().commit()


def client_gone() -> bool:
    """The caller closed its connection (the dispatcher that asked stopped). False where that
    cannot be told: no socket in the environ, or TLS in this process (no peeking there)."""
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if sock is None:
        return False
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""  # readable and empty: the peer closed
    except (TimeoutError, ValueError):
        return False
    except OSError:  # reset by the peer
        return True


def param(name: str, default: str | None = None) -> str | None:
    """Form and query merged (web.py's web.input()); the form wins."""
    # `in` first: werkzeug's MultiDict.get builds an HTTP exception for every missing key
    for values in (request.form, request.args):
        if name in values:
            return values[name]
    return default


def wants_json() -> bool:
    """Tables and scalars as JSON: `format=json` (query or form), else an Accept asking for it."""
    fmt = param("format")
    return fmt == "json" if fmt else accepts_json()


def accepts_json() -> bool:
    """The request's Accept asks for JSON. Errors go by this alone: with `format=json` the
    original still answered errors in text, and the GUI, which logs in with it, shows that text."""
    return request.accept_mimetypes.best == "application/json"


def session_id() -> str | None:
    return request.cookies.get(SESSION_COOKIE)


@overload
def identity(required: Literal[True] = True) -> auth.Identity: ...
@overload
def identity(required: bool) -> auth.Identity | None: ...
def identity(required: bool = True) -> auth.Identity | None:
    if "identity" not in g:
        g.identity = auth.identify(db=db(), session_id=session_id(), noauth=config().noauth,
                                   pool=autocommit_pool())
    if required and g.identity is None:
        raise NotLoggedIn()
    return g.identity


def admin_identity() -> auth.Identity:
    who = identity()
    require_admin(who)
    return who


def uploaded_file(field: str = "myfile") -> tuple[UploadFile, str]:
    """The streamed upload of multipart field `myfile` and the name it was sent with."""
    parts = request.files.getlist(field)
    if not parts:
        raise Invalid(f"Missing multipart file field '{field}'")
    if len(parts) > 1:
        raise Invalid(f"One file per upload: the body has {len(parts)} '{field}' parts")
    # the stream is the UploadFile that the request's form parser wrote the part into
    return cast(UploadFile, parts[0].stream), parts[0].filename or param("filename") or ""


def receive_upload(authorize, renew_every: float | None = None):
    """Authorize, stream the `myfile` part to disk, authorize again; returns (ticket, file, name).

    No transaction (row lock, pooled connection) is held while a large body arrives; the second
    check sees what changed meanwhile (a deleted ticket, an expired claim). With `renew_every`,
    `authorize` also runs (and is committed) that often while the body arrives: a provider's long
    upload is activity that renews its claim, and it stops at once if the claim was lost.
    """
    authorize()
    commit_now()
    if renew_every:
        def heartbeat() -> None:
            authorize()
            commit_now()
        g.upload_heartbeat = (heartbeat, renew_every)
    upload, name = uploaded_file()
    return authorize(), upload, name


def discard_uploads(_exc=None) -> None:
    for upload in g.pop("uploads", []):
        upload.discard()


def download(path: Path, name: str, mimetype: str = "application/octet-stream",
             attachment: bool = True):
    """Stream a file with Content-Length (send_file, no conditional/range handling)."""
    response = send_file(path, mimetype=mimetype, conditional=False, etag=False,
                         max_age=0)
    if attachment:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        if quoted.isascii():
            response.headers["Content-Disposition"] = f'attachment; filename="{quoted}"'
        else:
            response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
        response.headers["Content-Transfer-Encoding"] = "binary"
    return response


def set_session_cookie(response, value: str) -> None:
    """SameSite=Lax: browsers keep the cookie off other sites' forms and images (ITK-SNAP and
    the other clients are not browsers and ignore the attribute)."""
    response.set_cookie(SESSION_COOKIE, value, max_age=ONE_YEAR, path="/", httponly=True,
                        secure=request.is_secure, samesite="Lax")


def delete_session_cookie(response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True)


def refuse_cross_site() -> None:
    """A browser's request made by another web site (a form, an <img>, a link) must not act with
    the visitor's session: browsers label it (Sec-Fetch-Site; Origin in older ones), clients
    that are not browsers send neither. Typing an API URL into the address bar ("none") works."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        foreign = site not in ("same-origin", "none")
    else:
        origin = request.headers.get("Origin")
        foreign = origin is not None and origin not in _own_origins()
    if foreign:
        raise CrossSiteRefused("Cross-site request refused: the DSS API does not act on "
                               "requests that other web sites make in a visitor's browser")


def _own_origins() -> set[str]:
    """scheme://host[:port] of the request (after ProxyFix) and of DSS_PUBLIC_URL."""
    urls = (request.host_url, config().public_url)
    return {f"{parts.scheme}://{parts.netloc}" for parts in map(urlsplit, filter(None, urls))}


def public_base() -> str:
    """Absolute base of /blobs/ links: DSS_PUBLIC_URL, else the scheme and host of the request."""
    return (config().public_url or request.host_url).rstrip("/")
