"""The DSS web server: a Flask app speaking the ITK-SNAP Distributed Segmentation Service protocol."""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import psycopg2
from flask import Flask, g, request
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import db as database
from . import metrics, pages, wire
from .api import BLUEPRINTS
from .api._http import API_PREFIX, DSSRequest, accepts_json, discard_uploads, refuse_cross_site
from .config import Config, load_config
from .error_statuses import status_of
from .errors import DSSError, Invalid
from .services import bootstrap, notify

log = logging.getLogger(__name__)
UPLOAD_OVERHEAD = 16 * 1024 * 1024  # multipart framing and text fields on top of the file cap
# Cap of a text field (a log message); also bounds werkzeug's multipart read buffer, which
# reads MULTIPART_READ_BYTES at a time.
FORM_FIELD_BYTES = 4 * 1024 * 1024
DATABASE_RETRY_AFTER_SECONDS = 1
HTTP_MESSAGES = {400: "bad request", 401: "unauthorized", 404: "not found",
                 405: "method not allowed"}


def create_app(config: Config | Mapping | None = None) -> Flask:
    """The app; `config` is a Config, or a mapping of overrides of the environment's settings."""
    if not isinstance(config, Config):
        config = load_config(**dict(config or {}))
    app = Flask(__name__)
    app.request_class = DSSRequest
    app.config.update(DSS=config, SECRET_KEY=config.secret_key,
                      MAX_CONTENT_LENGTH=config.max_upload_bytes + UPLOAD_OVERHEAD,
                      MAX_FORM_MEMORY_SIZE=FORM_FIELD_BYTES)
    # Behind a proxy (OpenShift route, compose's TLS front) the scheme and host are the proxy's:
    # they make blob links absolute and the cookie Secure on https.
    app.wsgi_app = _MergeSlashes(ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1))  # type: ignore[method-assign]
    _init_database(app, config)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    pages.init_app(app)  # the browser pages (dss_server/pages)
    _init_request_cycle(app)
    _init_error_handlers(app)
    metrics.init_app(app)
    return app


def _init_database(app: Flask, config: Config) -> None:
    engine = database.make_engine(config.database_url)
    sessions = database.make_session_factory(engine)
    app.extensions.update(dss_engine=engine, dss_sessions=sessions,
                          dss_autocommit=database.make_autocommit_engine(config.database_url))
    migrate = config.embedded if config.migrate_on_start is None else config.migrate_on_start
    if migrate:
        database.migrate(engine)
    if config.embedded:
        bootstrap.ensure_local_admin(sessions)
    bootstrap.remove_stale_uploads(config.datastore)
    notify.install(sessions, engine)
    if config.lease_sweep:
        bootstrap.start_lease_sweeper(sessions, config)


def _init_request_cycle(app: Flask) -> None:
    @app.url_value_preprocessor
    def _refuse_nul(_endpoint, values):
        # as refuse_nul does for forms: PostgreSQL text cannot hold NUL (a provider name in a URL)
        for name, value in (values or {}).items():
            if isinstance(value, str) and "\x00" in value:
                raise Invalid(f"Path part '{name}' contains a NUL character")

    @app.before_request
    def _api_refuses_cross_site():
        if request.path.startswith(API_PREFIX):
            refuse_cross_site()

    @app.after_request
    def _api_not_sniffed(response):
        # A browser must not take an API answer (a log message, a file name) for HTML
        if request.path.startswith(API_PREFIX):
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.after_request
    def _finish_transaction(response):
        # The one owner of a request's transaction: services flush, this commits what a
        # successful answer did and rolls back what a refused one did (api._http.commit_now
        # is the named exception, for work that must not wait for the answer).
        session = g.get("db")
        if session is not None and session.in_transaction():
            try:
                if response.status_code < 400:
                    session.commit()
                else:
                    session.rollback()
            except (DBAPIError, psycopg2.Error) as exc:
                # Flask leaves errors of after_request hooks to its bare 500: answer as a
                # view's database error would (503 on a lost connection).
                return app.make_response(app.handle_user_exception(exc))
        return response

    @app.teardown_request
    def _close(exc):
        session = g.pop("db", None)
        if session is not None:
            session.close()
        discard_uploads()


def _init_error_handlers(app: Flask) -> None:
    @app.errorhandler(DSSError)
    def _dss_error(exc: DSSError):
        return wire.error(status_of(exc), exc.message, _json_safe())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        description = exc.description or ""
        if exc.code == 413:
            message = description if "bytes" in description else _too_large(app)
        else:
            message = (HTTP_MESSAGES.get(exc.code) if exc.code else None) or description or exc.name
        return wire.error(exc.code or 500, message, _json_safe())

    @app.errorhandler(DBAPIError)
    @app.errorhandler(psycopg2.Error)
    def _database_error(exc: Exception):
        if _not_migrated(app, exc):
            log.error("the database is not migrated: run python -m dss_server migrate")
            return _unavailable("The database is not migrated: run python -m dss_server migrate")
        if isinstance(exc, DBAPIError):
            # Pooled connections are not pinged before use (a round trip per request); after a
            # database restart the first request of each worker meets a dead one. SQLAlchemy
            # then replaces the pool, so that request may simply be tried again.
            if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
                return _crash(exc)
        elif isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
            # The same, met on an autocommit connection (straight psycopg2, no SQLAlchemy to
            # notice; services._autocommit.lend drops that connection): both pools start afresh.
            for name in ("dss_engine", "dss_autocommit"):
                if app.extensions[name] is not None:
                    app.extensions[name].dispose()
        else:
            return _crash(exc)
        log.warning("database unavailable: %s", " ".join(str(exc).split()))
        return _unavailable("The database connection was lost (the database may be "
                            "restarting); try again in a moment")

    def _unavailable(message: str):
        response = wire.error(503, message, _json_safe())
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(Exception)
    def _crash(exc: Exception):
        log.exception("unhandled error")
        return wire.error(500, "internal server error", _json_safe())


def _not_migrated(app: Flask, exc: Exception) -> bool:
    """A missing table or column (PostgreSQL: ProgrammingError; SQLite: OperationalError) on a
    database that answers but is behind the migrations: a fresh database nobody migrated."""
    if not isinstance(exc, (ProgrammingError, OperationalError, psycopg2.ProgrammingError)) \
            or getattr(exc, "connection_invalidated", False):
        return False
    try:
        if g.get("db") is not None:
            g.db.rollback()  # SQLite: the request's write lock would hold the check up
        return not database.migrations_at_head(app.extensions["dss_engine"])
    except (DBAPIError, psycopg2.Error):  # unreachable: a lost connection, not a missing table
        return False


def _too_large(app: Flask) -> str:
    """werkzeug's 413s say nothing of which limit: the body's length, or the form's shape."""
    length = request.content_length
    if length is None or length > app.config["MAX_CONTENT_LENGTH"]:
        return (f"Request exceeds the maximum upload size of "
                f"{app.config['DSS'].max_upload_bytes} bytes")
    return (f"Form too large: a text field over {FORM_FIELD_BYTES} bytes, or more than "
            f"{app.config['MAX_FORM_PARTS']} parts")


def _json_safe() -> bool:
    try:
        return accepts_json()
    except Exception:  # a malformed request must still get its error
        return False




class _MergeSlashes:
    """`//api/...` (a client base URL with a trailing slash) routes like `/api/...`, no redirect."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = re.sub("/{2,}", "/", path)
        return self.wsgi_app(environ, start_response)
