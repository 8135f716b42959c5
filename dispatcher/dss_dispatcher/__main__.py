"""`python -m dss_dispatcher`: the supervisor of every service's daemon, plus /metrics and
/healthz on DSS_METRICS_PORT. SIGTERM or Ctrl-C: each worker finishes its current stage."""
from __future__ import annotations

import logging
import signal
import sys

from . import metrics
from .config import ConfigError, load_settings
from .daemon import Supervisor
from .logs import setup_logging
from .workdirs import remove_stale_workdirs, unwritable_reason

log = logging.getLogger("dss_dispatcher")


def main() -> int:
    try:
        settings = load_settings()
        _check_work_dir(settings)
    except ConfigError as exc:
        print(f"dss-dispatcher: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_json)
    if removed := remove_stale_workdirs(settings.work_dir):
        log.info("removed %d scratch folders left by killed dispatchers", removed)
    supervisor = Supervisor(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: supervisor.stop())
    try:
        server = metrics.serve(settings.metrics_port, supervisor.health)
    except OSError as exc:
        log.error("cannot listen on DSS_METRICS_PORT=%d: %s", settings.metrics_port, exc)
        return 2
    log.info("dispatcher for %s on %s as provider %s (%d worker%s each); probes on :%d",
             ", ".join(s.service for s in settings.services), settings.server_url,
             settings.provider_name, settings.workers, "s" if settings.workers > 1 else "",
             server.server_address[1])
    supervisor.run()
    server.shutdown()
    return 0


def _check_work_dir(settings) -> None:
    """A scratch folder that cannot be written would release every ticket it claims."""
    if reason := unwritable_reason(settings.work_dir):
        raise ConfigError(f"DSS_WORK_DIR: {reason}")


if __name__ == "__main__":
    sys.exit(main())
