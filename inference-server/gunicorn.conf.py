"""gunicorn for production: ONE worker process, because the job pool and the loaded models
live in that process; HTTP concurrency comes from threads. The image sets INFERENCE_PORT=8080."""
from dss_inference import config

_settings = config.from_environment()

wsgi_app = "dss_inference:create_app()"
bind = f"0.0.0.0:{_settings.port}"
workers = 1
worker_class = "gthread"
threads = 8
# Uploads of a few hundred MB over slow links, and result downloads, must not be cut off.
timeout = 300
graceful_timeout = 30
accesslog = "-"
