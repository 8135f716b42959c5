"""Lung segmentation and lung nodule detection on chest CT, as a REST service."""
from __future__ import annotations

import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, Request, current_app

from .config import Config, load_config
from .runtime import EXTENSION, Runtime

UPLOAD_SPOOL = ".uploads"


class _SpoolingRequest(Request):
    """Spools large uploads inside the output directory: nothing is written elsewhere."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        spool = Path(current_app.extensions[EXTENSION].jobs.output_dir) / UPLOAD_SPOOL
        spool.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=spool)


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """The app. config: None (the environment), a Config, or overrides of Config fields."""
    settings = _settings(config)
    app = Flask(__name__)
    app.request_class = _SpoolingRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask types the base class; the default has it

    from .api import BLUEPRINTS
    from .errors import register_error_handlers

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    app.extensions[EXTENSION] = Runtime.start(settings)
    return app


def _settings(overrides) -> Config:
    if isinstance(overrides, Config):
        return overrides
    settings = load_config()
    if overrides:
        known = {f.name for f in fields(Config)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        settings = replace(settings, **overrides)
    return settings
