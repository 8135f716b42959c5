"""`python -m dss_server <command>`: run, migrate, and the admin chores `make up` needs."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from . import db as database
from . import logs
from .config import ConfigError, load_config, shown_url
from .errors import DSSError
from .services import auth, bootstrap, providers, registry


def _sessions(config):
    return database.make_session_factory(database.make_engine(config.database_url))


# What production runs (the image's CMD): the settings file beside the package (web-server/).
GUNICORN_CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def cmd_run(config, args) -> None:
    """gunicorn as in production (migrated by main already), or Flask's server with --dev."""
    if not args.dev:
        if not GUNICORN_CONF.is_file():
            raise ConfigError(f"{GUNICORN_CONF} is missing: run gunicorn -c gunicorn.conf.py "
                              f"from the web server's folder, or run --dev")
        os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF),
                                  "--bind", f"{args.host}:{config.port}"])
    from . import create_app
    logs.configure(config.log_json)
    app = create_app(config)
    if config.embedded:
        print_welcome_banner(config, app.extensions["dss_sessions"])
    app.run(host=args.host, port=config.port, threaded=True)


def print_welcome_banner(config, sessions=None) -> None:
    """Embedded mode: everything ITK-SNAP needs to connect at once."""
    token = bootstrap.local_admin_token(sessions or _sessions(config))
    print(f"DSS server (embedded mode, {config.database_url})\n"
          f"  URL:         http://127.0.0.1:{config.port}\n"
          f"  login token: {token}  (user {auth.EMBEDDED_ADMIN_EMAIL}, single use)", flush=True)


def cmd_migrate(config, args) -> None:
    print(f"database {shown_url(config.database_url)} is at the newest migration")


def _in_session(config, action):
    """One verb, one unit of work: committed when `action` returns, rolled back if it raises."""
    with _sessions(config).begin() as db:
        return action(db)


def cmd_create_admin(config, args) -> None:
    def action(db):
        user = auth.ensure_user(db, args.email, sysadmin=True, tier="poweruser")
        auth.make_admin(db, user)
        return auth.issue_token(db, user)
    print(_in_session(config, action))


def cmd_issue_token(config, args) -> None:
    print(_in_session(config, lambda db: auth.issue_token(db, auth.ensure_user(db, args.email),
                                                          reusable=args.reusable)))


def cmd_add_provider(config, args) -> None:
    _in_session(config, lambda db: providers.add(db, args.name))
    print("success")


def cmd_grant(config, args) -> None:
    def action(db):
        auth.ensure_user(db, args.email)
        providers.grant(db, args.provider, args.email, args.admin)
    _in_session(config, action)
    print(f"Added user {args.email} to provider {args.provider}")


def cmd_register_service(config, args) -> None:
    print(_in_session(config, lambda db: registry.register(db, config.datastore, args.provider,
                                                           args.repo, args.ref)))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m dss_server",
                                  description="DSS web server and its admin commands")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="migrate, then serve on PORT with gunicorn "
                                          "(gunicorn.conf.py, as in production)")
    run.add_argument("--host", default="0.0.0.0")
    run.add_argument("--dev", action="store_true", help="Flask's development server instead")
    run.set_defaults(handler=cmd_run)
    commands.add_parser("migrate", help="create/upgrade the tables").set_defaults(handler=cmd_migrate)
    admin = commands.add_parser("create-admin", help="make EMAIL a sysadmin; prints a login token")
    admin.add_argument("email")
    admin.set_defaults(handler=cmd_create_admin)
    token = commands.add_parser("issue-token", help="print a new token for EMAIL")
    token.add_argument("email")
    token.add_argument("--reusable", action="store_true", help="a provider token (not single use)")
    token.set_defaults(handler=cmd_issue_token)
    provider = commands.add_parser("add-provider", help="create (or revive) provider NAME")
    provider.add_argument("name")
    provider.set_defaults(handler=cmd_add_provider)
    grant = commands.add_parser("grant", help="let EMAIL act for PROVIDER")
    grant.add_argument("provider")
    grant.add_argument("email")
    grant.add_argument("--admin", action="store_true")
    grant.set_defaults(handler=cmd_grant)
    register = commands.add_parser("register-service", help="register a service repo; prints its githash")
    register.add_argument("provider")
    register.add_argument("repo")
    register.add_argument("ref", nargs="?", default="")
    register.set_defaults(handler=cmd_register_service)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config()
        # Every verb works on a fresh database (idempotent; replicas queue on migrate's lock).
        database.migrate(database.make_engine(config.database_url))
        args.handler(config, args)
    except (ConfigError, DSSError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        print(f"error: cannot use the database: {reason}", file=sys.stderr)
        return 2
    return 0
