"""docker-compose.yml (and the GPU override) parse and hold together."""
from __future__ import annotations

import pytest

from deploy_files import (
    COMPOSE_FILE,
    COMPOSE_GPU_FILE,
    compose_interpolated_names,
    env_example_names,
    env_example_values,
    load_yaml,
)
from helpers import REPO_ROOT

COMPOSE = load_yaml(COMPOSE_FILE)
SERVICES = COMPOSE["services"]
# Variables compose itself reads from .env.
COMPOSE_OWN_VARS = {"COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"}


def test_the_four_services_are_there():
    assert set(SERVICES) == {"db", "web-server", "dispatcher", "inference-server"}


@pytest.mark.parametrize("name", SERVICES)
def test_service_builds_from_its_own_folder(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service
    build = service["build"]
    context = build if isinstance(build, str) else build["context"]
    assert (REPO_ROOT / context / "Dockerfile").exists(), f"{name}: no Dockerfile in {context}"
    assert (REPO_ROOT / context).resolve() == (REPO_ROOT / name).resolve(), "context = the component folder"


@pytest.mark.parametrize("name", SERVICES)
def test_dependencies_exist_and_wait_for_health(name):
    depends_on = SERVICES[name].get("depends_on", {})
    assert isinstance(depends_on, dict), "long syntax, so the start waits for health"
    for dependency, condition in depends_on.items():
        assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"
        assert condition["condition"] == "service_healthy"
        assert "healthcheck" in SERVICES[dependency], f"{dependency} is waited for but has no healthcheck"


def test_start_order_is_db_web_inference_dispatcher():
    assert set(SERVICES["web-server"]["depends_on"]) == {"db"}
    assert set(SERVICES["dispatcher"]["depends_on"]) == {"web-server", "inference-server"}


@pytest.mark.parametrize("name", SERVICES)
def test_healthchecks_are_commands(name):
    test = SERVICES[name]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


def _mounts(name: str) -> dict[str, str]:
    """container path -> named volume (or host path) for the service."""
    mounts = {}
    for volume in SERVICES[name].get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def test_named_volumes_are_declared_and_used():
    used = {source for name in SERVICES for source in _mounts(name).values()
            if not source.startswith((".", "/"))}
    assert used == set(COMPOSE["volumes"])


def test_web_server_and_dispatcher_share_the_datastore_at_the_seed_paths():
    web, dispatcher = _mounts("web-server"), _mounts("dispatcher")
    assert web["/app/datastore"] == dispatcher["/datastore"]
    assert any(v.endswith("/datastore:ro") for v in SERVICES["dispatcher"]["volumes"]), \
        "the dispatcher only reads the datastore"
    assert "/wmlce/data/output" in _mounts("inference-server")
    assert "/var/lib/postgresql/data" in _mounts("db")


def test_dispatcher_reaches_the_others_by_service_name():
    env = SERVICES["dispatcher"]["environment"]
    assert env["SERVER_URL"] == "http://web-server:8080"
    assert env["LUNG_SEGMENTATION_SERVICE_URL"] == "http://inference-server:8080"
    assert env["NODULE_DETECTION_SERVICE_URL"] == "http://inference-server:8080"


def test_secrets_come_from_the_env_file_and_must_be_set():
    text, shipped = COMPOSE_FILE.read_text(), env_example_values()
    for secret in ("POSTGRES_PASSWORD", "ITK_SNAP_SERVER_DATABASE_PASSWORD", "DSS_SECRET_KEY"):
        assert f"${{{secret}:?" in text, f"{secret} must be required (${{{secret}:?...}})"
        assert shipped[secret] == "", "no default secret: compose refuses to start until it is set"


def test_env_example_lists_exactly_the_variables_compose_substitutes():
    used = compose_interpolated_names(COMPOSE_FILE.read_text() + COMPOSE_GPU_FILE.read_text())
    # Null-valued entries (`NAME:`) are passed through from .env too.
    used |= {key for service in SERVICES.values() for key, value in
             (service.get("environment") or {}).items() if value is None}
    listed = env_example_names()
    assert used - listed == set(), "add these to .env.example"
    assert listed - used - COMPOSE_OWN_VARS == set(), ".env.example lists variables compose never uses"


def test_gpu_override_reserves_a_gpu_for_the_inference_server_only():
    override = load_yaml(COMPOSE_GPU_FILE)["services"]
    assert set(override) == {"inference-server"}
    devices = override["inference-server"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
