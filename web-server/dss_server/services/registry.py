"""Service registration from git (spec c.8): clone repo at ref, read service.json, githash = commit."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from ..errors import AlreadyExists, Invalid
from ..models import ProviderService, Service
from . import parameters, providers

GIT_TIMEOUT = 300
# No prompts, no `ext::` or other command-running transports.
_GIT = ["git", "-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"]


class GitTimeout(Invalid):
    """The remote did not answer in time (a retry would only wait as long again)."""


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    # Own process group: on a timeout git's transport helpers (git-remote-https) die with it
    # instead of holding the output pipes open.
    with subprocess.Popen(_GIT + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          start_new_session=True) as process:
        try:
            stdout, _ = process.communicate(timeout=GIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise GitTimeout(f"Error fetching Git repository (no answer within "
                             f"{GIT_TIMEOUT:g} s)") from None
    if process.returncode != 0:
        raise Invalid("Error fetching Git repository")
    return stdout.strip()


def fetch(repo: str, ref: str, workdir: Path) -> str:
    """Fetch `ref` (empty: the remote HEAD) of `repo` into `workdir`; returns the commit hash."""
    if not repo or repo.startswith("-") or (ref or "").startswith("-"):
        raise Invalid("Error fetching Git repository")
    _git(["init", "-q"], workdir)
    try:
        _git(["fetch", "-q", "--depth=1", "--", repo, ref or "HEAD"], workdir)
    except GitTimeout:
        raise
    except Invalid:  # servers that refuse shallow fetches of a commit id
        _git(["fetch", "-q", "--", repo, ref or "HEAD"], workdir)
    _git(["checkout", "-q", "FETCH_HEAD"], workdir)
    return _git(["rev-parse", "HEAD"], workdir)


def refuse_symlinks(workdir: Path) -> None:
    """A symbolic link in the checkout could point anywhere on the server (service.json ->
    /etc/passwd, or a folder -> /): a service's tree with one is refused whole, so nothing read
    from it, now or from its kept copy later, lies outside it. os.walk does not follow links."""
    for folder, dirs, names in os.walk(workdir):
        if Path(folder) == workdir:
            dirs.remove(".git")  # git's own, made by `git init` here
        for name in dirs + names:
            path = Path(folder, name)
            if path.is_symlink():
                raise Invalid(f"Service repository refused: {path.relative_to(workdir)} "
                              f"is a symbolic link (links are not allowed in a service's "
                              f"tree)")


def read_descriptor(workdir: Path) -> dict:
    try:
        descriptor = json.loads((workdir / "service.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise Invalid("Error parsing service.json file") from None
    if not isinstance(descriptor, dict) or not all(
            isinstance(descriptor.get(key), str) and descriptor[key].strip()
            for key in ("name", "version")):
        raise Invalid("Error parsing service.json file")
    if len(descriptor["name"]) > 40 or len(descriptor["version"]) > 40:
        raise Invalid("Error parsing service.json file")
    parameters.check_declaration(descriptor)
    return descriptor


def register(db: DB, datastore: Path, provider: str, repo: str, ref: str = "") -> str:
    providers.existing(db, provider)
    (datastore / "tmp").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="service-", dir=datastore / "tmp"))
    try:
        githash = fetch(repo.strip(), (ref or "").strip(), workdir)
        refuse_symlinks(workdir)
        descriptor = read_descriptor(workdir)
        _save(db, provider, githash, descriptor)
        _keep_clone(workdir, datastore / "services" / githash)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return githash


def _save(db: DB, provider: str, githash: str, descriptor: dict) -> None:
    name, version = descriptor["name"], descriptor["version"]
    clash = db.scalar(select(Service).where(Service.name == name, Service.version == version,
                                            Service.current.is_(True), Service.githash != githash))
    if clash is not None:
        raise AlreadyExists("A service with same name and version already exists")
    service = db.get(Service, githash) or Service(githash=githash)
    service.name, service.version = name, version
    service.shortdesc = str(descriptor.get("shortdesc") or "")[:78]
    service.json = json.dumps(descriptor)
    service.current = True
    db.add(service)
    db.flush()
    link = db.get(ProviderService, (provider, githash))
    if link is None:
        db.add(ProviderService(provider_name=provider, service_githash=githash, current=True))
    else:
        link.current = True
    db.flush()


def _keep_clone(workdir: Path, destination: Path) -> None:
    if destination.exists():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(workdir, destination, symlinks=True)
