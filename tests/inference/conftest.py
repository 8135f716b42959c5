"""Fixtures for the inference server's service side: apps on the test models of
inference_testing, served by the Flask test client or a real HTTP server on loopback."""
from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from dss_inference import create_app
from helpers import free_port
from inference_testing import load_test_models


@pytest.fixture
def gate():
    """(gate, started): open the gate to let GatedModel jobs finish."""
    gate, started = threading.Event(), threading.Event()
    yield gate, started
    gate.set()


@pytest.fixture
def test_models(gate):
    return lambda settings: load_test_models(settings, *gate)


@pytest.fixture
def make_app(tmp_path, test_models):
    """Factory of apps on the test models, output under tmp_path/output; stopped after."""
    apps = []

    def make(**overrides):
        settings = {"output_dir": tmp_path / "output", "device": "cpu",
                    "load_models": test_models, **overrides}
        app = create_app(settings)
        app.config["TESTING"] = True
        assert app.extensions["dss_inference"].registry.wait_ready(30)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["dss_inference"].stop()


@pytest.fixture
def client(make_app):
    return make_app().test_client()


@pytest.fixture
def live_server(make_app):
    """Factory: a real HTTP server on loopback serving an app; returns its base URL."""
    servers = []

    def serve(**overrides):
        server = make_server("127.0.0.1", free_port(), make_app(**overrides), threaded=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()

