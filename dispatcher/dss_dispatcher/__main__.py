"""`python -m dss_dispatcher`: the two lung services (or those of DSS_SERVICES_FILE) served by
the provider SDK, plus /metrics and /healthz on DSS_METRICS_PORT. SIGTERM or Ctrl-C: each
worker finishes its current stage."""
from __future__ import annotations

import sys

from dss_client.sdk import serve

from .config import ConfigError, load_config
from .worker import inference_service


def main() -> int:
    try:
        settings = load_config()
    except ConfigError as exc:
        print(f"dss-dispatcher: {exc}", file=sys.stderr)
        return 2
    return serve.run(settings, [inference_service(spec, settings.inference_timeout)
                                for spec in settings.services], "dss-dispatcher")


if __name__ == "__main__":
    sys.exit(main())
