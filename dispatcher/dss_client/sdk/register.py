"""Registration of a service from its service.json, as `make up` does for the built-in ones:
the descriptor committed into a local git repository with fixed dates (so the same descriptor
always gives the same githash), which the web server clones (it must see the same disk)."""
from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
from pathlib import Path

from .. import DSSClient
from .config import child_environment
from .service import LoadError, Service

FIXED_DATE = "2026-01-01T00:00:00+00:00"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "DSS stack", "GIT_AUTHOR_EMAIL": "dss@localhost",
                "GIT_COMMITTER_NAME": "DSS stack", "GIT_COMMITTER_EMAIL": "dss@localhost",
                "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE}


def service_repo(descriptor: Path, root: Path) -> Path:
    """<root>/<name>: a git repo holding the descriptor, committed with fixed dates, so the
    same descriptor always gives the same githash."""
    repo = (root / descriptor.parent.name).resolve()
    git = ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    environment = child_environment(**GIT_IDENTITY)
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(git + ["init", "-q"], cwd=repo, check=True, env=environment)
    target = repo / "service.json"
    if not target.exists() or not filecmp.cmp(descriptor, target, shallow=False):
        shutil.copyfile(descriptor, target)
        subprocess.run(git + ["add", "service.json"], cwd=repo, check=True, env=environment)
        subprocess.run(git + ["commit", "-q", "-m", f"{descriptor.parent.name} service"],
                       cwd=repo, check=True, env=environment)
    return repo


def read_descriptor(service: Service) -> dict:
    """The service's service.json, which must describe the decorated service."""
    assert service.descriptor is not None  # register() keeps the services that have one
    try:
        descriptor = json.loads(service.descriptor.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {service.descriptor}: {exc}") from None
    if not isinstance(descriptor, dict) or descriptor.get("name") != service.name or \
            service.version not in ("", descriptor.get("version")):
        raise LoadError(f"{service.descriptor} does not describe service {service.name} "
                        f"{service.version}".rstrip())
    return descriptor


def ensure_registered(admin: DSSClient, service: Service, provider: str, email: str,
                      repos: Path) -> str:
    """As an administrator: the provider created, `email` (the provider token's user) allowed
    to act for it, and the service's descriptor registered unless the provider serves that
    version already. Returns what was done, for the user."""
    descriptor = read_descriptor(service)
    admin.add_provider(provider)   # keeps an existing one
    if email not in {user.email for user in admin.provider_users(provider)}:
        admin.add_provider_user(provider, email)
    if any(row.name == service.name and row.version == descriptor["version"]
           for row in admin.provider_service_list(provider)):
        return f"{service.name} {descriptor['version']} was already registered for {provider}"
    assert service.descriptor is not None  # read_descriptor read it
    githash = admin.register_service(provider, str(service_repo(service.descriptor, repos)))
    return f"registered {service.name} {descriptor['version']} for {provider}: {githash.strip()}"
