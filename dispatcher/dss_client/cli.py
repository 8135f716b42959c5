"""`dss`: the command line of the DSS client (user, provider and admin verbs, and `dss demo`).

Every failure is one line on stderr and a non-zero exit code; lists print aligned columns, or
JSON with `--json`. The server and session come from `dss login` (see `config.py`).
"""
from __future__ import annotations

import argparse
import getpass
import re
import shlex
import sys
from pathlib import Path

from . import config
from .api import DSSClient, load_submission
from .errors import DSSError
from .terminal import TERMINAL_STATES, CLIError, ProgressBar, print_rows, print_value, wait_for_tickets

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


# -- session ---------------------------------------------------------------------------------

def _client(args) -> DSSClient:
    login = config.load_login()
    server = args.server or (login.server if login else None)
    if not server:
        raise CLIError("not logged in: run `dss login URL` first (or pass --server URL)")
    same_server = login is not None and login.server == server.rstrip("/")
    return DSSClient(server, session_id=login.session_id if login and same_server else None)


def _remember_session(client: DSSClient) -> None:
    """Keep a session id the server handed out (e.g. NOAUTH) for the next run on this server."""
    login = config.load_login()
    if login and login.server == client.base_url and client.session_id != login.session_id:
        login.session_id = client.session_id
        config.save_login(login)


def _read_token(args, server: str) -> str:
    if args.token:
        return args.token
    if sys.stdin.isatty():
        return getpass.getpass(f"Login token (from {server}/token): ")
    return sys.stdin.readline()


def _log_in(client: DSSClient, token: str) -> str:
    """The user's e-mail; a refused token says where a new one comes from."""
    try:
        return client.login(token)
    except DSSError as exc:
        if exc.status != 401:
            raise
        raise CLIError("the server refused the token (wrong, or already used: login tokens work "
                       f"once); get a new one from {client.base_url}/token or from your "
                       "administrator") from None


def cmd_login(args) -> int:
    server = (args.url or args.server or config.DEFAULT_SERVER).rstrip("/")
    client = DSSClient(server)
    token = _read_token(args, server).strip()
    if not token:
        raise CLIError("no token given: get one from " + server + "/token")
    email = _log_in(client, token)
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


def cmd_service(args, client: DSSClient) -> int:
    print_value({"detail": client.service_detail(args.githash),
                 "stats": client.service_stats(args.githash)}, True)
    return 0


def cmd_tickets(args, client: DSSClient) -> int:
    summaries = client.ticket_summaries()
    if args.json:
        print_value(summaries, True)
        return 0
    rows = [(row["id"], row["service"], row["status"], row.get("scan_name") or "",
             _utc_time(row.get("created"))) for row in summaries]
    print_rows(rows, ("id", "service", "status", "scan", "created"), False)
    return 0


def _utc_time(stamp: str | None) -> str:
    """`2026-12-05T08:31:12Z` as `2026-12-05 08:31 UTC`."""
    return f"{stamp[:10]} {stamp[11:16]} UTC" if stamp else ""


def _minutes(duration: float | None) -> str:
    """A duration in minutes with its unit: `5 min`, `2 h 5 min`."""
    if duration is None:
        return ""
    hours, minutes = divmod(round(duration), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def cmd_admin_tickets(args, client: DSSClient) -> int:
    rows = client.admin_tickets()
    shown = rows if args.json else [  # JSON keeps the number of minutes
        (row.id, row.email, row.service, row.status, _minutes(row.duration)) for row in rows]
    print_rows(shown, ("id", "email", "service", "status", "duration"), args.json)
    return 0


def cmd_status(args, client: DSSClient) -> int:
    detail = client.detail(args.id, since=0)
    summary = {"id": args.id, "status": detail["status"],
               "progress": round(float(detail.get("progress", 0.0)), 3)}  # not 0.35550000000000004
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


def _require_downloadable(client: DSSClient, args) -> str:
    """The ticket's status; refuses a deleted ticket, and results of one still running."""
    detail = client.detail(args.id)
    status = detail["status"]
    if status == "deleted":
        raise CLIError(f"ticket {args.id} was deleted")
    if args.area == "results" and status not in TERMINAL_STATES:
        raise CLIError(f"ticket {args.id} is still running ({status}, "
                       f"{_percent(detail.get('progress', 0.0))}): wait for it with "
                       f"dss wait {args.id} --download {shlex.quote(args.dir)}")
    return status


def _percent(progress: float) -> str:
    return f"{round(float(progress) * 100)} %"


def _download_results(client: DSSClient, ticket_id: int, dest: str | Path) -> list[Path]:
    """The result files into `dest`, and the log's attachments (reports, previews) into
    `dest/attachments`."""
    paths = client.download(ticket_id, "results", dest)
    return paths + client.download_attachments(ticket_id, Path(dest) / "attachments")


def cmd_download(args, client: DSSClient) -> int:
    status = _require_downloadable(client, args)
    paths = (_download_results(client, args.id, args.dir) if args.area == "results"
             else client.download(args.id, args.area, args.dir))
    if paths:
        _print_paths(paths)
        return 0
    if status in ("failed", "timeout"):
        raise CLIError(f"ticket {args.id} ended {status} without {args.area} files: "
                       f"see why with dss log {args.id}")
    raise CLIError(f"ticket {args.id} has no {args.area} files")


def cmd_delete(args, client: DSSClient) -> int:
    print(client.delete(args.id))
    return 0


def cmd_retry(args, client: DSSClient) -> int:
    print(client.retry(args.id))
    return 0


def _keeps_running(ticket_ids: list[int]) -> str:
    if len(ticket_ids) == 1:
        [ticket_id] = ticket_ids
        return (f"ticket {ticket_id} keeps running on the server: follow it with "
                f"dss wait {ticket_id}, or cancel it with dss delete {ticket_id}")
    return (f"tickets {', '.join(map(str, ticket_ids))} keep running on the server: follow each "
            "with dss wait ID, or cancel it with dss delete ID")


def _wait(client: DSSClient, ticket_ids: list[int],
          timeout: float | None) -> dict[int, tuple[str, list[dict]]]:
    """`wait_for_tickets` with one bar; giving up (--timeout, Ctrl-C) says the tickets go on
    without us."""
    bar = ProgressBar(f"ticket {ticket_ids[0]}" if len(ticket_ids) == 1
                      else f"{len(ticket_ids)} tickets")
    try:
        return wait_for_tickets(client, ticket_ids, bar, timeout=timeout)
    except TimeoutError as exc:
        raise CLIError(f"{exc}; {_keeps_running(ticket_ids)}") from None
    except KeyboardInterrupt:
        bar.close()  # end the bar's line: the message gets its own
        raise KeyboardInterrupt(_keeps_running(ticket_ids)) from None


def _wait_and_download(client: DSSClient, ticket_ids: list[int], args,
                       print_status: bool = False) -> int:
    """Wait for the tickets, print the downloaded paths (several tickets: each in DIR/ID), then
    the exit code: 0 when all succeeded, else one line naming each that did not."""
    ended = _wait(client, ticket_ids, args.timeout)
    for ticket_id, (status, _) in ended.items():
        if status == "success" and args.download:
            dest = Path(args.download) / (str(ticket_id) if len(ticket_ids) > 1 else "")
            _print_paths(_download_results(client, ticket_id, dest))
    if print_status:
        print(ended[ticket_ids[0]][0])
    failures = [_ending(ticket_id, status, log) for ticket_id, (status, log) in ended.items()
                if status != "success"]
    if failures:
        raise CLIError("; ".join(failures))
    return 0


def _ending(ticket_id: int, status: str, log: list[dict]) -> str:
    errors = [entry["message"] for entry in log if entry["category"] == "error"]
    return f"ticket {ticket_id} ended {status}" + (f": {errors[-1]}" if errors else "")


def _show_upload(path: Path) -> None:
    print(f"uploading {path.name} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr, flush=True)


def _submission_files(names: list[str]) -> list[Path]:
    """The files named; a folder stands for its .itksnap workspaces or, without any, for every
    other file in it (not hidden ones). A folder of DICOM files stays a folder, for the advice
    that a DICOM series must be converted first."""
    files: list[Path] = []
    for name in names:
        path = Path(name)
        inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) \
            if path.is_dir() else []
        if not inside or all(p.suffix.lower() == ".dcm" for p in inside):
            files.append(path)
        else:
            files += [p for p in inside if p.suffix == ".itksnap"] or inside
    return files


def _parameter(text: str) -> tuple[str, str]:
    """`--param NAME=VALUE`; the server checks the value against the service's declaration."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def cmd_submit(args, client: DSSClient) -> int:
    files = _submission_files(args.files)
    workspaces = [load_submission(file) for file in files]  # all checked before any ticket
    ticket_ids: list[int] = []
    try:
        for workspace in workspaces:
            ticket_ids.append(client.submit_workspace(workspace, args.service,
                                                      on_upload=_show_upload,
                                                      parameters=dict(args.param)))
            print(ticket_ids[-1], flush=True)
    except BaseException:
        if ticket_ids:
            print(f"dss: {len(ticket_ids)} of {len(files)} files were submitted before the "
                  f"error below: {_keeps_running(ticket_ids)}", file=sys.stderr)
        raise
    if not (args.wait or args.download):
        return 0
    return _wait_and_download(client, ticket_ids, args)


def cmd_wait(args, client: DSSClient) -> int:
    return _wait_and_download(client, [args.id], args, print_status=True)


# -- provider and admin: mostly one client call each -----------------------------------------

def _prints(call):
    """Handler printing the bare-text answer of `call(client, args)`."""
    def handler(args, client: DSSClient) -> int:
        print(call(client, args))
        return 0
    return handler


def _lists(call, columns: tuple[str, ...]):
    """Handler printing the rows of `call(client, args)` as columns, or JSON with --json."""
    def handler(args, client: DSSClient) -> int:
        print_rows(call(client, args), columns, args.json)
        return 0
    return handler


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


def cmd_provider_fail(args, client: DSSClient) -> int:
    client.log_message(args.id, "error", args.message)
    print(client.set_status(args.id, "failed"))
    return 0


def cmd_admin_providers(args, client: DSSClient) -> int:
    names = client.providers()
    if args.json:
        print_value(names, True)
    else:
        print_rows([(name,) for name in names], ("name",), False)
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
    _add(verbs, "service", cmd_service, "a service's service.json and statistics (JSON)") \
        .add_argument("githash")
    submit = _add(verbs, "submit", cmd_submit,
                  "submit images or .itksnap workspaces, one ticket each")
    submit.add_argument("files", nargs="+", metavar="FILE",
                        help="an image (NIfTI, NRRD, MHA, ...), an .itksnap workspace, or a folder "
                             "of them")
    submit.add_argument("--service", required=True, help="service name or 40-hex githash")
    submit.add_argument("--param", action="append", type=_parameter, default=[],
                        metavar="NAME=VALUE", help="a parameter of the service (repeatable; "
                        "see dss service GITHASH), stored in the workspace it submits")
    submit.add_argument("--wait", action="store_true", help="show progress until the ticket ends")
    submit.add_argument("--download", metavar="DIR", help="after success, download results (and attachments) here "
                             "(several tickets: each in DIR/ID)")
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
    wait.add_argument("--download", metavar="DIR", help="after success, download results (and attachments) here")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    download = _add(verbs, "download", cmd_download,
                    "download a ticket's files (results: with the log's attachments)")
    download.add_argument("id", type=int)
    download.add_argument("dir")
    download.add_argument("--area", choices=("results", "input"), default="results")
    demo = _add(verbs, "demo", cmd_demo, "submit a synthetic chest CT to the lung services")
    demo.add_argument("--out", default="dss-demo", help="folder for the phantom and the results")
    demo.add_argument("--segmentation-service", default="LungSegmentation")
    demo.add_argument("--nodule-service", default="LungNoduleDetection")


ID = ("id", {"type": int})
NUMBER = {"type": float}
HASHES = ("services", {"help": "comma-separated githashes"})


def _verb(sub, name: str, help_text: str, handler, *arguments, json_flag: bool = False):
    """A sub-command; each argument is a name or a (name, add_argument options) pair."""
    parser = _add(sub, name, handler, help_text, json_flag)
    for argument in arguments:
        flag, options = (argument, {}) if isinstance(argument, str) else argument
        parser.add_argument(flag, **options)
    return parser


def _provider_verbs(verbs) -> None:
    provider = verbs.add_parser("provider", help="provider verbs (what a dispatcher does)")
    sub = provider.add_subparsers(dest="verb", required=True, metavar="VERB")
    _verb(sub, "services", "services you may provide",
          _lists(lambda c, a: c.provider_services(), ("name", "version", "githash", "provider")),
          json_flag=True)
    _verb(sub, "available", "ready tickets per service",
          _lists(lambda c, a: c.available(a.services), ("githash", "name", "ready")),
          HASHES, json_flag=True)
    _verb(sub, "claim", "claim the oldest ready ticket", cmd_provider_claim, HASHES,
          ("--provider", {"required": True}),
          ("--code", {"default": "default", "help": "instance name"}),
          ("--wait", {**NUMBER, "help": "seconds the server may hold the request"}),
          json_flag=True)
    _verb(sub, "download", "download a claimed ticket's input", cmd_provider_download, ID, "dir")
    _verb(sub, "upload", "upload result files", cmd_provider_upload, ID, ("files", {"nargs": "+"}))
    _verb(sub, "progress", "report chunked progress",
          _prints(lambda c, a: c.set_progress(a.id, a.start, a.end, a.value)),
          ID, ("start", NUMBER), ("end", NUMBER), ("value", NUMBER))
    _verb(sub, "log", "append to the ticket log",
          _prints(lambda c, a: c.log_message(a.id, a.category, a.message)),
          ID, ("category", {"choices": ("info", "warning", "error")}), "message")
    _verb(sub, "attach", "attach a file to the next log line",
          _prints(lambda c, a: c.attach(a.id, a.file, a.description, a.mime_type)),
          ID, "file", "description", "--mime-type")
    _verb(sub, "status", "status of a ticket", _prints(lambda c, a: c.provider_status(a.id)), ID)
    _verb(sub, "success", "mark a ticket done",
          _prints(lambda c, a: c.set_status(a.id, "success")), ID)
    _verb(sub, "fail", "log an error and fail the ticket", cmd_provider_fail, ID, "message")
    _verb(sub, "release", "hand a claimed ticket back to the queue",
          _prints(lambda c, a: c.release(a.id, a.message)), ID,
          ("message", {"nargs": "?", "default": "", "help": "reason, for the ticket log"}))


def _admin_verbs(verbs) -> None:
    admin = verbs.add_parser("admin", help="administrator verbs")
    sub = admin.add_subparsers(dest="verb", required=True, metavar="VERB")
    _verb(sub, "providers", "list providers", cmd_admin_providers, json_flag=True)
    _verb(sub, "add-provider", "create a provider",
          _prints(lambda c, a: c.add_provider(a.name)), "name")
    _verb(sub, "delete-provider", "retire a provider",
          _prints(lambda c, a: c.delete_provider(a.name)), "name")
    _verb(sub, "users", "users of a provider",
          _lists(lambda c, a: c.provider_users(a.provider), ("id", "email", "admin")),
          "provider", json_flag=True)
    _verb(sub, "grant", "let a user act for a provider",
          _prints(lambda c, a: c.add_provider_user(a.provider, a.email, a.admin)),
          "provider", "email", ("--admin", {"action": "store_true"}))
    _verb(sub, "revoke", "remove a user from a provider",
          _prints(lambda c, a: c.remove_provider_user(a.provider, a.user_id)),
          "provider", ("user_id", {"type": int}))
    _verb(sub, "services", "services of a provider",
          _lists(lambda c, a: c.provider_service_list(a.provider),
                 ("name", "githash", "version", "shortdesc")),
          "provider", json_flag=True)
    _verb(sub, "register-service", "register a service from a git repo; prints its githash",
          _prints(lambda c, a: c.register_service(a.provider, a.repo, a.ref)),
          "provider", "repo", ("ref", {"nargs": "?", "default": ""}))
    _verb(sub, "retire-service", "retire a provider's service",
          _prints(lambda c, a: c.retire_service(a.provider, a.githash)), "provider", "githash")
    _verb(sub, "tickets", "all open tickets", cmd_admin_tickets, json_flag=True)
    purge = _verb(sub, "purge", "delete old tickets (default: older than 7 days)",
                  _prints(lambda c, a: c.purge(a.scope, days=a.days, hours=a.hours)),
                  ("scope", {"choices": ("completed", "all")}))
    age = purge.add_mutually_exclusive_group()
    age.add_argument("--days", type=float)
    age.add_argument("--hours", type=float)
    _verb(sub, "issue-token", "a reusable (provider) token for a user, created if new",
          _prints(lambda c, a: c.issue_token(a.email, reusable=not a.single_use)), "email",
          ("--single-use", {"action": "store_true", "help": "a one-time login token instead"}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dss", description="Client of the DSS (ITK-SNAP "
                                     "Distributed Segmentation Service) middleware.")
    parser.add_argument("--server", help="server URL (default: the one of `dss login`)")
    verbs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _user_verbs(verbs)
    _provider_verbs(verbs)
    _admin_verbs(verbs)
    serve = verbs.add_parser("serve", help="run a provider service written with dss_client.sdk",
                             description="Run the @service function MODULE:FUNCTION (a module "
                                         "name or a .py file) as a provider, with the DSS_* "
                                         "settings of the environment (docs/sdk.md: Write your own "
                                         "service).")
    serve.add_argument("target", metavar="MODULE:FUNCTION")
    serve.add_argument("--register", action="store_true",
                       help="as an administrator (dss login): create the provider "
                            "DSS_PROVIDER_NAME, let DSS_PROVIDER_TOKEN's user act for it, "
                            "register the service.json next to the module, and exit")
    serve.set_defaults(needs_client=False, handler=_serve)
    return parser


def _serve(args) -> int:
    from .sdk import serve  # only a provider needs it

    if not args.register:
        return serve.serve(args.target)
    client = _client(args)
    try:
        return serve.register(client, args.target)
    finally:
        client.close()


def _run(args) -> int:
    if not getattr(args, "needs_client", True):
        return args.handler(args)
    client = _client(args)
    try:
        return args.handler(args, client)
    finally:
        _remember_session(client)
        client.close()


# The server's wire text (which ITK-SNAP shows as it is), said for a `dss` user.
_SERVER_MESSAGES = (
    (re.compile(r"Ticket (\d+) not found for user \d+"),
     "ticket {0} does not exist or is not yours"),
    (re.compile(r"Unable to find service named (.+)"),
     "no service named {0} (see dss services; names are case-sensitive)"),
    (re.compile(r"Insufficient privileges"),
     "this needs an administrator account (you are logged in, but not as an administrator)"),
    (re.compile(r"You are not a provider for service (\S+)"),
     "this account is not a member of a provider of service {0} (an administrator grants it: "
     "dss admin grant PROVIDER EMAIL)"),
)


def _explain(exc: DSSError) -> str:
    """One line for a server error: a known message in the user's terms, else the server's."""
    if not exc.status:
        return str(exc)
    for pattern, text in _SERVER_MESSAGES:
        found = pattern.fullmatch(exc.body.strip())
        if found:
            return text.format(*found.groups())
    hint = " (log in again: dss login URL)" if exc.status == 401 else ""
    return f"server said {exc}{hint}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt as exc:
        print(f"dss: interrupted; {exc}" if str(exc) else "dss: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DSSError as exc:
        print(f"dss: {_explain(exc)}", file=sys.stderr)
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
