"""gunicorn for production: ONE worker process, because the job pool and the loaded models
live in that process; HTTP concurrency comes from threads. The image sets INFERENCE_PORT=8080.
(gunicorn reads every public name here as a setting, hence the underscores.)"""
from gunicorn.glogging import CONFIG_DEFAULTS as _GUNICORN_LOGGING

from dss_inference.config import load_config as _load_config

wsgi_app = "dss_inference:create_app()"
bind = f"0.0.0.0:{_load_config().port}"
workers = 1
worker_class = "gthread"
threads = 8
# Uploads of a few hundred MB over slow links, and result downloads, must not be cut off.
timeout = 300
graceful_timeout = 30
accesslog = "-"
# No control socket in $HOME: the server writes nothing outside INFERENCE_OUTPUT_DIR.
control_socket_disable = True
# gunicorn's logging defaults, with its loggers kept off the root logger (whose INFO lines,
# the app's job log, go to the console) so that nothing is printed twice.
logconfig_dict = {
    **_GUNICORN_LOGGING,
    "loggers": {name: {**logger, "propagate": False}
                for name, logger in _GUNICORN_LOGGING["loggers"].items()},
}


def on_starting(server):
    """The app's log lines (the root logger) as text or JSON lines (DSS_LOG_JSON)."""
    from dss_inference import logs

    logs.configure(_load_config().log_json)
