"""`python -m dss_inference`: the development server on INFERENCE_PORT (make inference).

Production runs gunicorn with inference-server/gunicorn.conf.py instead.
"""
from __future__ import annotations

import logging

from werkzeug.serving import make_server

from . import config, create_app, logs


def main() -> None:
    settings = config.load_config()
    logs.configure(settings.log_json)
    app = create_app(settings)
    server = make_server("127.0.0.1", settings.port, app, threaded=True)
    logging.getLogger(__name__).info("inference server on http://127.0.0.1:%d", settings.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        app.extensions["dss_inference"].stop()


if __name__ == "__main__":
    main()
