"""`dss`: the command line of the DSS client (user, provider and admin verbs, and `dss demo`).

Every failure is one line on stderr and a non-zero exit code; lists print aligned columns, or
JSON with `--json`. The server and session come from `dss login` (see `config.py`).
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from . import config
from .api import DSSClient
from .errors import DSSError
from .terminal import CLIError, ProgressBar, print_rows, print_value, wait_for_ticket

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


# -- session ---------------------------------------------------------------------------------

def _client(args) -> DSSClient:
    login = config.load_login()
    server = args.server or (login.server if login else None)
    if not server:
        raise CLIError("not logged in: run `dss login URL` first (or pass --server URL)")
    same_server = login is not None and login.server == server.rstrip("/")
    return DSSClient(server, session_id=login.session_id if same_server else None)


def _remember_session(client: DSSClient) -> None:
    """Keep a session id the server handed out (e.g. NOAUTH) for the next run on this server."""
    login = config.load_login()
    if login and login.server == client.base_url and client.session_id != login.session_id:
        login.session_id = client.session_id
        config.save_login(login)


def _read_token(args) -> str:
    if args.token:
        return args.token
    if sys.stdin.isatty():
        return getpass.getpass("Login token (from <server>/token): ")
    return sys.stdin.readline()


def cmd_login(args) -> int:
    server = (args.url or args.server or config.DEFAULT_SERVER).rstrip("/")
    client = DSSClient(server)
    token = _read_token(args).strip()
    if not token:
        raise CLIError("no token given: get one from " + server + "/token")
    email = client.login(token)
    path = config.save_login(config.Login(server, client.session_id, email))
    print(f"logged in to {server} as {email} (session saved in {path})")
    return 0


def cmd_whoami(args, client: DSSClient) -> int:
    print(f"{client.whoami()} on {client.base_url}")
    return 0


# -- user ------------------------------------------------------------------------------------

def cmd_services(args, client: DSSClient) -> int:
    print_rows(client.services(), ("name", "githash", "version", "shortdesc"), args.json)
    return 0


def cmd_tickets(args, client: DSSClient) -> int:
    print_rows(client.tickets(), ("id", "service", "status"), args.json)
    return 0


def cmd_status(args, client: DSSClient) -> int:
    detail = client.detail(args.id, since=0)
    summary = {"id": args.id, "status": detail["status"], "progress": detail.get("progress", 0.0)}
    if "queue_position" in detail:
        summary["queue_position"] = detail["queue_position"]
    if args.json:
        print_value(summary, True)
    else:
        print("  ".join(f"{key}={value}" for key, value in summary.items()))
    return 0


def cmd_log(args, client: DSSClient) -> int:
    entries = client.log(args.id, since=args.since)
    if args.json:
        print_value([{**entry._asdict(), "attachments": [a._asdict() for a in
                                                         client.log_attachments(entry.id)]
                      if entry.attachments else []} for entry in entries], True)
        return 0
    print_rows(entries, ("id", "atime", "category", "attachments", "message"), False)
    for entry in entries:
        for attachment in client.log_attachments(entry.id) if entry.attachments else []:
            print(f"  @ {attachment.url} : {attachment.description} (log {entry.id})")
    return 0


def _print_paths(paths: list[Path]) -> None:
    for path in paths:
        print(path)


def cmd_download(args, client: DSSClient) -> int:
    paths = client.download(args.id, args.area, args.dir)
    if not paths:
        raise CLIError(f"ticket {args.id} has no {args.area} files")
    _print_paths(paths)
    return 0


def cmd_delete(args, client: DSSClient) -> int:
    print(client.delete(args.id))
    return 0


def cmd_retry(args, client: DSSClient) -> int:
    print(client.retry(args.id))
    return 0


def _wait_and_download(client: DSSClient, ticket_id: int, args) -> tuple[str, list[dict], list[Path]]:
    status, log = wait_for_ticket(client, ticket_id, ProgressBar(f"ticket {ticket_id}"),
                                  timeout=args.timeout)
    paths = client.download(ticket_id, "results", args.download) if (
        status == "success" and args.download) else []
    return status, log, paths


def _finish(ticket_id: int, status: str, log: list[dict]) -> int:
    if status == "success":
        return 0
    errors = [entry["message"] for entry in log if entry["category"] == "error"]
    reason = f": {errors[-1]}" if errors else ""
    raise CLIError(f"ticket {ticket_id} ended {status}{reason}")


def cmd_submit(args, client: DSSClient) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise CLIError(f"no such file: {source}")
    ticket_id = client.submit_workspace(source, args.service)
    print(ticket_id, flush=True)
    if not (args.wait or args.download):
        return 0
    status, log, paths = _wait_and_download(client, ticket_id, args)
    _print_paths(paths)
    return _finish(ticket_id, status, log)


def cmd_wait(args, client: DSSClient) -> int:
    status, log, paths = _wait_and_download(client, args.id, args)
    _print_paths(paths)
    print(status)
    return _finish(args.id, status, log)


# -- provider --------------------------------------------------------------------------------

def cmd_provider_services(args, client: DSSClient) -> int:
    print_rows(client.provider_services(), ("name", "version", "githash", "provider"), args.json)
    return 0


def cmd_provider_available(args, client: DSSClient) -> int:
    print_rows(client.available(args.services), ("githash", "name", "ready"), args.json)
    return 0


def cmd_provider_claim(args, client: DSSClient) -> int:
    claim = client.claim(args.services, args.provider, args.code, wait=args.wait)
    if claim is None:
        raise CLIError("no ticket ready to claim")
    print_rows([claim], ("ticket_id", "githash", "status"), args.json)
    return 0


def cmd_provider_download(args, client: DSSClient) -> int:
    _print_paths(client.provider_download(args.id, args.dir))
    return 0


def cmd_provider_upload(args, client: DSSClient) -> int:
    for file in args.files:
        client.upload_result(args.id, file)
        print(f"uploaded {file}")
    return 0


def cmd_provider_progress(args, client: DSSClient) -> int:
    print(client.set_progress(args.id, args.start, args.end, args.value))
    return 0


def cmd_provider_log(args, client: DSSClient) -> int:
    print(client.log_message(args.id, args.category, args.message))
    return 0


def cmd_provider_attach(args, client: DSSClient) -> int:
    print(client.attach(args.id, args.file, args.description, args.mime_type))
    return 0


def cmd_provider_status(args, client: DSSClient) -> int:
    print(client.provider_status(args.id))
    return 0


def cmd_provider_success(args, client: DSSClient) -> int:
    print(client.set_status(args.id, "success"))
    return 0


def cmd_provider_fail(args, client: DSSClient) -> int:
    client.log_message(args.id, "error", args.message)
    print(client.set_status(args.id, "failed"))
    return 0


# -- admin -----------------------------------------------------------------------------------

def cmd_admin_providers(args, client: DSSClient) -> int:
    names = client.providers()
    if args.json:
        print_value(names, True)
    else:
        print_rows([(name,) for name in names], ("name",), False)
    return 0


def cmd_admin_add_provider(args, client: DSSClient) -> int:
    print(client.add_provider(args.name))
    return 0


def cmd_admin_delete_provider(args, client: DSSClient) -> int:
    print(client.delete_provider(args.name))
    return 0


def cmd_admin_users(args, client: DSSClient) -> int:
    print_rows(client.provider_users(args.provider), ("id", "email", "admin"), args.json)
    return 0


def cmd_admin_grant(args, client: DSSClient) -> int:
    print(client.add_provider_user(args.provider, args.email, args.admin))
    return 0


def cmd_admin_revoke(args, client: DSSClient) -> int:
    print(client.remove_provider_user(args.provider, args.user_id))
    return 0


def cmd_admin_services(args, client: DSSClient) -> int:
    print_rows(client.provider_service_list(args.provider),
               ("name", "githash", "version", "shortdesc"), args.json)
    return 0


def cmd_admin_register_service(args, client: DSSClient) -> int:
    print(client.register_service(args.provider, args.repo, args.ref))
    return 0


def cmd_admin_retire_service(args, client: DSSClient) -> int:
    print(client.retire_service(args.provider, args.githash))
    return 0


def cmd_admin_tickets(args, client: DSSClient) -> int:
    print_rows(client.admin_tickets(), ("id", "email", "service", "status", "duration"), args.json)
    return 0


def cmd_admin_purge(args, client: DSSClient) -> int:
    print(client.purge(args.scope, days=args.days, hours=args.hours))
    return 0


def cmd_admin_issue_token(args, client: DSSClient) -> int:
    print(client.issue_token(args.email, reusable=not args.single_use))
    return 0


def cmd_demo(args, client: DSSClient) -> int:
    from .demo import run_demo

    return run_demo(client, Path(args.out), args.segmentation_service, args.nodule_service)


# -- parser ----------------------------------------------------------------------------------

def _add(subparsers, name: str, handler, help_text: str, json_flag: bool = False):
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def _user_verbs(verbs) -> None:
    login = verbs.add_parser("login", help="log in with a token and remember the session",
                             description="Log in with a token (from <server>/token) and remember "
                                         "the server and session.")
    login.add_argument("url", nargs="?", help=f"server URL (default {config.DEFAULT_SERVER})")
    login.add_argument("--token", help="the token (else prompted for, or read from stdin)")
    login.set_defaults(handler=cmd_login, needs_client=False)
    _add(verbs, "whoami", cmd_whoami, "show who the saved session belongs to")
    _add(verbs, "services", cmd_services, "list the services", json_flag=True)
    submit = _add(verbs, "submit", cmd_submit, "submit an image or .itksnap workspace")
    submit.add_argument("file", help="an image (NIfTI, NRRD, MHA, ...) or an .itksnap workspace")
    submit.add_argument("--service", required=True, help="service name or 40-hex githash")
    submit.add_argument("--wait", action="store_true", help="show progress until the ticket ends")
    submit.add_argument("--download", metavar="DIR", help="after success, download results here")
    submit.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    _add(verbs, "tickets", cmd_tickets, "list your tickets", json_flag=True)
    for name, handler, text in (("status", cmd_status, "status, progress, queue position"),
                                ("delete", cmd_delete, "delete a ticket (cancels its work)"),
                                ("retry", cmd_retry, "queue a failed ticket again")):
        _add(verbs, name, handler, text, json_flag=name == "status").add_argument("id", type=int)
    log = _add(verbs, "log", cmd_log, "show a ticket's log and attachments", json_flag=True)
    log.add_argument("id", type=int)
    log.add_argument("--since", type=int, default=0, help="only entries after this log id")
    wait = _add(verbs, "wait", cmd_wait, "show progress until a ticket ends")
    wait.add_argument("id", type=int)
    wait.add_argument("--download", metavar="DIR", help="after success, download results here")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    download = _add(verbs, "download", cmd_download, "download a ticket's files")
    download.add_argument("id", type=int)
    download.add_argument("dir")
    download.add_argument("--area", choices=("results", "input"), default="results")
    demo = _add(verbs, "demo", cmd_demo, "submit a synthetic chest CT to the lung services")
    demo.add_argument("--out", default="dss-demo", help="folder for the phantom and the results")
    demo.add_argument("--segmentation-service", default="LungSegmentation")
    demo.add_argument("--nodule-service", default="LungNoduleDetection")


def _provider_verbs(verbs) -> None:
    provider = verbs.add_parser("provider", help="provider verbs (what a dispatcher does)")
    sub = provider.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add(sub, "services", cmd_provider_services, "services you may provide", json_flag=True)
    available = _add(sub, "available", cmd_provider_available, "ready tickets per service",
                     json_flag=True)
    available.add_argument("services", help="comma-separated githashes")
    claim = _add(sub, "claim", cmd_provider_claim, "claim the oldest ready ticket", json_flag=True)
    claim.add_argument("services", help="comma-separated githashes")
    claim.add_argument("--provider", required=True)
    claim.add_argument("--code", default="default", help="instance name")
    claim.add_argument("--wait", type=float, help="seconds the server may hold the request")
    download = _add(sub, "download", cmd_provider_download, "download a claimed ticket's input")
    download.add_argument("id", type=int)
    download.add_argument("dir")
    upload = _add(sub, "upload", cmd_provider_upload, "upload result files")
    upload.add_argument("id", type=int)
    upload.add_argument("files", nargs="+")
    progress = _add(sub, "progress", cmd_provider_progress, "report chunked progress")
    progress.add_argument("id", type=int)
    for name in ("start", "end", "value"):
        progress.add_argument(name, type=float)
    log = _add(sub, "log", cmd_provider_log, "append to the ticket log")
    log.add_argument("id", type=int)
    log.add_argument("category", choices=("info", "warning", "error"))
    log.add_argument("message")
    attach = _add(sub, "attach", cmd_provider_attach, "attach a file to the next log line")
    attach.add_argument("id", type=int)
    attach.add_argument("file")
    attach.add_argument("description")
    attach.add_argument("--mime-type")
    for name, handler, text in (("status", cmd_provider_status, "status of a ticket"),
                                ("success", cmd_provider_success, "mark a ticket done")):
        _add(sub, name, handler, text).add_argument("id", type=int)
    fail = _add(sub, "fail", cmd_provider_fail, "log an error and fail the ticket")
    fail.add_argument("id", type=int)
    fail.add_argument("message")


def _admin_verbs(verbs) -> None:
    admin = verbs.add_parser("admin", help="administrator verbs")
    sub = admin.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add(sub, "providers", cmd_admin_providers, "list providers", json_flag=True)
    for name, handler, text in (("add-provider", cmd_admin_add_provider, "create a provider"),
                                ("delete-provider", cmd_admin_delete_provider, "retire a provider")):
        _add(sub, name, handler, text).add_argument("name")
    _add(sub, "users", cmd_admin_users, "users of a provider", json_flag=True) \
        .add_argument("provider")
    grant = _add(sub, "grant", cmd_admin_grant, "let a user act for a provider")
    grant.add_argument("provider")
    grant.add_argument("email")
    grant.add_argument("--admin", action="store_true")
    revoke = _add(sub, "revoke", cmd_admin_revoke, "remove a user from a provider")
    revoke.add_argument("provider")
    revoke.add_argument("user_id", type=int)
    _add(sub, "services", cmd_admin_services, "services of a provider", json_flag=True) \
        .add_argument("provider")
    register = _add(sub, "register-service", cmd_admin_register_service,
                    "register a service from a git repo; prints its githash")
    register.add_argument("provider")
    register.add_argument("repo")
    register.add_argument("ref", nargs="?", default="")
    retire = _add(sub, "retire-service", cmd_admin_retire_service, "retire a provider's service")
    retire.add_argument("provider")
    retire.add_argument("githash")
    _add(sub, "tickets", cmd_admin_tickets, "all open tickets", json_flag=True)
    purge = _add(sub, "purge", cmd_admin_purge, "delete old tickets")
    purge.add_argument("scope", choices=("completed", "all"))
    age = purge.add_mutually_exclusive_group()
    age.add_argument("--days", type=float)
    age.add_argument("--hours", type=float)
    token = _add(sub, "issue-token", cmd_admin_issue_token,
                 "a reusable (provider) token for a user, created if new")
    token.add_argument("email")
    token.add_argument("--single-use", action="store_true", help="a one-time login token instead")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dss", description="Client of the DSS (ITK-SNAP "
                                     "Distributed Segmentation Service) middleware.")
    parser.add_argument("--server", help="server URL (default: the one of `dss login`)")
    verbs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _user_verbs(verbs)
    _provider_verbs(verbs)
    _admin_verbs(verbs)
    return parser


def _run(args) -> int:
    if not getattr(args, "needs_client", True):
        return args.handler(args)
    client = _client(args)
    try:
        return args.handler(args, client)
    finally:
        _remember_session(client)
        client.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("dss: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DSSError as exc:
        hint = " (log in again: dss login URL)" if exc.status == 401 else ""
        print(f"dss: server said {exc}{hint}" if exc.status else f"dss: {exc}", file=sys.stderr)
    except (CLIError, ValueError, TimeoutError) as exc:  # ValueError: bad files, bad bodies
        print(f"dss: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"dss: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"dss: {exc}",
              file=sys.stderr)
    except Exception as exc:  # the promise is one line, never a traceback
        print(f"dss: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
