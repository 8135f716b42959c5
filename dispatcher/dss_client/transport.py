"""HTTP to one DSS server: pooled connections, the session cookie, timeouts, streamed bodies,
and failures mapped to `DSSError` (retry what `DSSTransientError` marks, after any Retry-After).

`DSSClient` (api.py) builds the DSS API on top of this; nothing else speaks HTTP to the server.
"""
from __future__ import annotations

import http.cookies
import os
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError, ProxyError, SSLError
from urllib3.exceptions import TimeoutError as HTTPTimeoutError

from . import diskspace
from .errors import DSSError, DSSLocalError, DSSTransientError, parse_retry_after
from .multipart import MultipartFile

SESSION_COOKIE = "webpy_session_id"
CONNECT_TIMEOUT = 10.0
DOWNLOAD_CHUNK_BYTES = 4 << 20  # read1(): whatever arrived, up to this, in one call
POOL_SIZE = 16  # connections kept open: one DSSClient may serve several threads at once
# Failures worth retrying (with retries=False urllib3 raises them as they are); TLS errors too,
# as requests counted them among connection errors.
_TRANSPORT_FAILURES = (HTTPTimeoutError, ProtocolError, ProxyError, SSLError)
_ACCEPT_ENCODING = {  # gzip, deflate (and br, zstd where installed), as requests asked for
    "Accept-Encoding": urllib3.util.make_headers(accept_encoding=True)["accept-encoding"]}


def _proxy_for(url: str) -> str | None:
    """The proxy that HTTP(S)_PROXY / ALL_PROXY name for `url`, as requests chose it; None to go
    direct (no proxy set, or NO_PROXY names the host)."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy  # `HTTP_PROXY=host:3128` is common
    return proxy


def _proxy_headers(proxy: str) -> dict[str, str]:
    """Basic auth from the proxy URL's user info, which urllib3 (unlike requests) leaves unsent."""
    parts = urllib.parse.urlsplit(proxy)
    if not parts.username:
        return {}
    user, password = (urllib.parse.unquote(part or "") for part in (parts.username, parts.password))
    basic = urllib3.util.make_headers(proxy_basic_auth=f"{user}:{password}")
    return {"Proxy-Authorization": basic["proxy-authorization"]}


def _ca_settings() -> dict[str, str]:
    """REQUESTS_CA_BUNDLE (file or folder) as requests honoured it; else the system CA store."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if not bundle:
        return {}
    return {"ca_cert_dir": bundle} if os.path.isdir(bundle) else {"ca_certs": bundle}


def _pool_for(base_url: str) -> urllib3.PoolManager:
    """Thread-safe connections to `base_url`; never retried (callers retry), never blocking
    when more threads than POOL_SIZE call at once (extra connections are simply not kept)."""
    settings: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False, "retries": False, **_ca_settings()}
    proxy = _proxy_for(base_url)
    if proxy is None:
        return urllib3.PoolManager(**settings)
    return urllib3.ProxyManager(proxy, proxy_headers=_proxy_headers(proxy), **settings)


def _session_cookie(response: urllib3.BaseHTTPResponse) -> str | None:
    """The `webpy_session_id` a response sets, if any (an empty value, a deletion, is ignored)."""
    for header in response.headers.getlist("Set-Cookie"):
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(header)
        except http.cookies.CookieError:
            continue
        morsel = cookie.get(SESSION_COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None


def _reason(exc: Exception) -> str:
    """The short cause inside urllib3's errors, e.g. `Connection refused`."""
    # urllib3 2 makes NewConnectionError (refused, unresolvable) a ConnectTimeoutError
    if isinstance(exc, HTTPTimeoutError) and not isinstance(exc, NewConnectionError):
        return "timed out"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    return found.group(1).strip() if found else type(exc).__name__


def _release(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back to the pool, closed first if part of the body is still unread
    (the next response on it would start with the rest)."""
    if not response.closed:
        response.close()
    response.release_conn()


def _content_length(response: urllib3.BaseHTTPResponse) -> int:
    try:
        return max(0, int(response.headers.get("Content-Length", "")))
    except ValueError:
        return 0


def _is_transient(status: int) -> bool:
    return status >= 500 or status == 429


def safe_filename(name: str) -> str:
    """The basename of a server-given file name; refuses names that could leave the folder."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base:
        raise DSSError(None, f"refusing unsafe file name from server: {name!r}")
    return base


def _server_url(base_url: str) -> str:
    """`base_url` without a trailing slash; a ValueError unless it is http(s)://HOST[...]
    (urllib3 would guess http:// for `host:8080`, with a two-line warning, and reject `notaurl`
    only when it failed to resolve)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a server URL: {base_url!r} (expected http://HOST[:PORT] "
                         "or https://HOST[:PORT])")
    return base_url.rstrip("/")


def _first_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: it exists)."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    return missing[-1] if missing else None



class Transport:
    """A logged-in (or NOAUTH) connection to one DSS server; the calls return its answers' bodies."""

    def __init__(self, base_url: str, session_id: str | None = None, timeout: float = 300):
        self.base_url = _server_url(base_url)
        self.timeout = timeout
        self._session_id = session_id or None
        self._http = _pool_for(self.base_url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.clear()

    @property
    def session_id(self) -> str | None:
        """Value of the `webpy_session_id` cookie; pass it to a new DSSClient to resume."""
        return self._session_id

    def _request(self, method: str, path: str, *, params=None, form=None, body=None,
                 headers=None, stream: bool = False,
                 read_timeout: float | None = None) -> urllib3.BaseHTTPResponse:
        """One call; unless `stream`, the body is read before returning."""
        url = f"{self.base_url}/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {**_ACCEPT_ENCODING, **(headers or {})}
        if form:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self._session_id:
            headers["Cookie"] = f"{SESSION_COOKIE}={self._session_id}"
        try:
            response = self._http.request(
                method, url, body=body, headers=headers, redirect=False,
                preload_content=not stream,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout or self.timeout))
        except _TRANSPORT_FAILURES as exc:
            raise DSSTransientError(None, f"cannot reach {self.base_url} ({_reason(exc)})",
                                    url) from None
        except HTTPError as exc:
            raise DSSError(None, f"request to {self.base_url} failed: {exc}", url) from None
        new_session = _session_cookie(response)
        if new_session:
            self._session_id = new_session
        if response.status != 200:
            error = self._error(response, url)
            if body is not None:
                # The server may answer before reading the whole body (413, 507) and then
                # drop the connection, perhaps only after its answer was read: pooled, it
                # would fail the next call (the ticket cleanup of submit_workspace). Idle
                # connections are closed; the next call opens a fresh one.
                self._http.clear()
            raise error
        return response

    @staticmethod
    def _error(response: urllib3.BaseHTTPResponse, url: str) -> DSSError:
        try:
            body = response.data[:4000].decode("utf-8", errors="replace")
        except HTTPError:
            body = ""
        finally:
            _release(response)
        status = response.status
        if _is_transient(status):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return DSSTransientError(status, body, url, retry_after)
        return DSSError(status, body, url)

    def _text(self, method: str, path: str, **kwargs) -> str:
        return self._request(method, path, **kwargs).data.decode("utf-8", errors="replace")

    def _get(self, path: str, **params) -> str:
        return self._text("GET", path, params=params)

    def _post(self, path: str, **form) -> str:
        return self._text("POST", path, form=form)

    def _upload(self, path: str, file: Path, **fields: str) -> str:
        """A streamed multipart body, framed by its length (no chunked encoding)."""
        file = Path(file)
        body = MultipartFile(file, {"filename": file.name, "submit": "send", **fields})
        return self._text("POST", path, body=body, headers={
            "Content-Type": body.content_type, "Content-Length": str(len(body))})

    def _download(self, path: str, dest_dir: Path, name: str) -> Path:
        """Stream one file to `dest_dir/name` (via a temporary name, so no half files remain)."""
        target = Path(dest_dir) / safe_filename(name)
        partial = target.with_name(target.name + ".part")
        response = self._request("GET", path, stream=True)
        try:
            with open(partial, "wb") as out:  # urllib3 raises if the body ends short
                diskspace.reserve(out.fileno(), _content_length(response))
                while chunk := response.read1(DOWNLOAD_CHUNK_BYTES, decode_content=True):
                    out.write(chunk)
                out.truncate(out.tell())  # a decoded body may be shorter than what was reserved
            partial.replace(target)
            return target
        except HTTPError as exc:
            raise DSSTransientError(None, f"download of {name} interrupted ({_reason(exc)})",
                                    path) from None
        except OSError as exc:
            raise DSSLocalError(f"cannot save {name} in {dest_dir} ({exc.strerror or exc})",
                                path, exc.errno) from None
        finally:
            _release(response)
            partial.unlink(missing_ok=True)  # left only when the download failed

    def _download_all(self, files: list[tuple[str, str]], dest_dir: str | Path) -> list[Path]:
        """Each (path, name) into `dest_dir`; the folder is made only when there are files, and
        a folder this call made is removed again when a download fails."""
        if not files:
            return []
        dest = Path(dest_dir)
        new_folder = _first_missing(dest)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            return [self._download(path, dest, name) for path, name in files]
        except BaseException:
            if new_folder is not None:
                shutil.rmtree(new_folder, ignore_errors=True)
            raise

