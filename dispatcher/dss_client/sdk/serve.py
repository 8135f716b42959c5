"""Running services: `dss serve module:function`, `python -m dss_client.sdk module:function`
and `python -m dss_dispatcher` all end here. One supervisor process, /metrics and /healthz on
DSS_METRICS_PORT; SIGTERM or Ctrl-C: each worker finishes its current stage, then releases
its ticket."""
from __future__ import annotations

import logging
import signal
import sys

from .. import DSSClient
from . import metrics
from .config import Config, ConfigError, load_config
from .daemon import Supervisor
from .logs import setup_logging
from .register import ensure_registered
from .service import LoadError, Service, load
from .workdirs import remove_stale_workdirs, unwritable_reason

log = logging.getLogger("dss_client.sdk")


def run(settings: Config, services: list[Service], name: str = "dispatcher") -> int:
    """Serve `services` until SIGTERM or Ctrl-C; 2 when the settings cannot work."""
    if reason := unwritable_reason(settings.work_dir):
        # a scratch folder that cannot be written would release every ticket it claims
        print(f"{name}: DSS_WORK_DIR: {reason}", file=sys.stderr)
        return 2
    setup_logging(settings.log_json)
    if removed := remove_stale_workdirs(settings.work_dir):
        log.info("removed %d scratch folders left by killed providers", removed)
    supervisor = Supervisor(settings, services)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: supervisor.stop())
    try:
        server = metrics.serve(settings.metrics_port, supervisor.health)
    except OSError as exc:
        log.error("cannot listen on DSS_METRICS_PORT=%d: %s", settings.metrics_port, exc)
        return 2
    log.info("%s for %s on %s as provider %s (%d worker%s each); probes on :%d", name,
             ", ".join(s.name for s in services), settings.server_url, settings.provider_name,
             settings.workers, "s" if settings.workers > 1 else "", server.server_address[1])
    supervisor.run()
    server.shutdown()
    return 0


def serve(target: str) -> int:
    """`dss serve module:function`."""
    try:
        settings = load_config()
        services = load(target)
    except (ConfigError, LoadError) as exc:
        print(f"dss serve: {exc}", file=sys.stderr)
        return 2
    return run(settings, services, "dss serve")


def register(admin: DSSClient, target: str) -> int:
    """`dss serve --register module:function`, by an administrator logged in with `dss login`:
    what `make up` does for the built-in services, for the provider DSS_PROVIDER_NAME and the
    user of DSS_PROVIDER_TOKEN."""
    try:
        settings = load_config()
        services = [s for s in load(target) if s.descriptor and s.descriptor.exists()]
        if not services:
            raise LoadError(f"no service.json next to {target}")
        email = DSSClient(admin.base_url).login(settings.provider_token)
        for service in services:
            print(ensure_registered(admin, service, service.provider or settings.provider_name,
                                    email, settings.work_dir / "services"))
    except (ConfigError, LoadError) as exc:
        print(f"dss serve: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m dss_client.sdk MODULE[:FUNCTION]  (a module name or a .py file)",
              file=sys.stderr)
        return 2
    return serve(args[0])
