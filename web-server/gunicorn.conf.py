"""gunicorn settings: threaded workers (claims may wait, uploads are long), port from PORT.

Workers: gunicorn's own WEB_CONCURRENCY (gunicorn's default 1; the image sets 2; about the CPU
count is right).
"""
from dss_server.config import listen_port

bind = f"0.0.0.0:{listen_port()}"
worker_class = "dss_server.gworker.ThreadWorker"  # gthread; reads time out (DSS_BODY_TIMEOUT)
threads = 16  # DSS_CLAIM_WAITS (8) of them at most hold `wait=` claims
timeout = 600  # 1 GB uploads and `wait=` claims must not be taken for hung workers
graceful_timeout = 30
keepalive = 75  # idle kept-alive connections wait in the poller, not in a thread
accesslog = "-"
# gunicorn's control socket (~/.gunicorn/gunicorn.ctl) is one path per user, shared by every
# instance on the machine, in a home folder a container may not let us write; we use none
control_socket_disable = True
wsgi_app = "dss_server.wsgi:app"

# glibc gives each buffer of 128 KiB and more its own mmap, so every MiB of an upload or a body
# read lands in memory the kernel must fault in anew; on a VM that hands freed memory back to
# its host, that cost more than the upload's parsing (bench/transfer.py). Buffers up to 16 MiB
# come from the heap instead, which keeps up to 64 MiB free for reuse before trimming.
MALLOC_MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
MALLOC_TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def post_fork(server, worker):
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD_BYTES)
    mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD_BYTES)


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
