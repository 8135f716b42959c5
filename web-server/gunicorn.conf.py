"""gunicorn settings: threaded workers (claims may wait, uploads are long), port from PORT.

Workers: gunicorn's own WEB_CONCURRENCY (default 1 here: set it to about the CPU count).
"""
from dss_server.config import listen_port

bind = f"0.0.0.0:{listen_port()}"
worker_class = "gthread"
threads = 16
timeout = 600  # 1 GB uploads and `wait=` claims must not be taken for hung workers
graceful_timeout = 30
keepalive = 75
accesslog = "-"
wsgi_app = "dss_server.wsgi:app"


def on_starting(server):
    """Embedded mode: migrate once before the workers start, print the URL and a login token."""
    from dss_server import db as database
    from dss_server import logs
    from dss_server.cli import print_welcome_banner
    from dss_server.config import load_config

    config = load_config()
    logs.configure(config.log_json)
    if config.embedded:
        database.migrate(database.make_engine(config.database_url))
        print_welcome_banner(config)
