"""Each component's own config loader accepts the exact values compose and the OpenShift template
give it (empty optional values included), and reads them as meant."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy_files import TEMPLATE_FILE, env_example_filled, image_env, load_yaml, process_template, service_environment

TOKEN = "ab" * 24


def openshift_env(name: str) -> dict[str, str]:
    """What the container `name` gets: image ENV, then envFrom, then env (Kubernetes' order)."""
    objects = process_template(load_yaml(TEMPLATE_FILE), {"SOURCE_REPOSITORY_URL": "https://example.invalid/dss.git",
                                                          "DSS_PROVIDER_TOKEN": TOKEN})
    data = {(o["kind"], o["metadata"]["name"]): o.get("data") or o.get("stringData")
            for o in objects if o["kind"] in ("ConfigMap", "Secret")}
    (container,) = [c for o in objects if o["kind"] == "Deployment"
                    for c in o["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    env = image_env(name)
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data[("ConfigMap", source["configMapRef"]["name"])])
        else:
            env.update(data[("Secret", source["secretRef"]["name"])])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[item["name"]] = data[("Secret", ref["secretKeyRef"]["name"])][ref["secretKeyRef"]["key"]]
        elif "fieldRef" in ref:
            env[item["name"]] = "dss-dispatcher-5d8f7c9b4-x2k1q"
        else:
            env[item["name"]] = item["value"]
    return env


def compose_env(name: str) -> dict[str, str]:
    return service_environment(name, {**env_example_filled(), "DSS_PROVIDER_TOKEN": TOKEN}, {})


DEPLOYMENTS = {"compose": compose_env, "openshift": openshift_env}


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """Replace the whole environment, run in a temporary folder."""
    def use(values: dict[str, str]):
        for key in list(os.environ):
            if key not in ("PATH", "HOME", "LANG"):
                monkeypatch.delenv(key)
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return use


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_web_server_config_uses_postgresql_with_the_seed_names(deployment, environment):
    from dss_server.config import load_config
    environment(DEPLOYMENTS[deployment]("web-server"))
    config = load_config()
    assert not config.embedded and not config.noauth
    assert config.database_url.startswith("postgresql+psycopg2://admin_user:")
    assert config.database_url.endswith(":5432/admin_db")
    assert config.datastore == Path("/app/datastore") and config.port == 8080
    assert config.public_url is None and config.max_upload_bytes == 4 * 1024 ** 3


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_dispatcher_settings_point_at_the_services_and_use_the_token(deployment, environment):
    from dss_dispatcher.config import load_config
    environment(DEPLOYMENTS[deployment]("dispatcher"))
    settings = load_config()
    assert settings.provider_token == TOKEN and settings.provider_name == "DSS-LAB"
    assert settings.shared_datastore == Path("/datastore") and settings.metrics_port == 9100
    assert settings.server_url.endswith(":8080") and len(settings.services) == 2
    assert all(service.inference_url.endswith(":8080") for service in settings.services)
    assert settings.provider_code, "the code falls back to the host (compose) or is the pod name"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_inference_settings_listen_on_8080_and_write_to_the_volume(deployment, environment):
    from dss_inference.config import load_config
    environment(DEPLOYMENTS[deployment]("inference-server"))
    settings = load_config()
    assert settings.port == 8080 and settings.output_dir == Path("/wmlce/data/output")
    assert settings.device == "auto" and settings.workers is None
    assert settings.lung_model_weights is None and settings.nodule_model_weights is None
    assert settings.max_voxels == 3 * 10 ** 8
