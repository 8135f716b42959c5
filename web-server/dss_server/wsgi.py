"""WSGI entry for gunicorn: `gunicorn -c gunicorn.conf.py dss_server.wsgi:app`."""
from . import create_app

app = create_app()
