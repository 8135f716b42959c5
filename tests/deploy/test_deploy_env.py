"""Environment variables: what compose, OpenShift and the Dockerfiles set for a component is
exactly what its config.py reads (no typos, nothing forgotten), and its page of docs/ documents it."""
from __future__ import annotations

import re

import pytest

from deploy_files import (
    COMPONENTS,
    COMPOSE_FILE,
    TEMPLATE_FILE,
    component_env_reads,
    env_assignments,
    load_yaml,
    parse_dockerfile,
    process_template,
)
from helpers import REPO_ROOT

# Set in the images for Python, pip and the shell; no component reads them.
RUNTIME_VARS = {"PATH", "HOME", "VIRTUAL_ENV", "PYTHONUNBUFFERED",
                "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
# Read by the libraries themselves, not by config.py.
LIBRARY_VARS = {
    "web-server": {"WEB_CONCURRENCY": "gunicorn's worker processes",
                   "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's multiprocess mode"},
    "dispatcher": {},
    "inference-server": {},
}
# Read by a component but deliberately not set by the deployments.
NOT_DEPLOYED = {
    "web-server": {
        "DATABASE_URL": "the deployments use the seed's POSTGRES_* / ITK_SNAP_SERVER_DATABASE_* variables",
    },
    "dispatcher": {
        "PORT": "read by dss_dispatcher.devstack (`make up`) only, which no image runs",
        "INFERENCE_PORT": "read by dss_dispatcher.devstack (`make up`) only, which no image runs",
    },
    "inference-server": {},
}
# The official postgres image's own variables, and what db/initdb/*.sh reads.
POSTGRES_IMAGE_VARS = {"POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_INITDB_ARGS",
                       "POSTGRES_HOST_AUTH_METHOD", "PGDATA"}


def reads(name: str) -> set[str]:
    names = component_env_reads(COMPONENTS[name])
    if names is None:
        pytest.skip("component config not written yet")
    return names


def dockerfile_env(name: str) -> set[str]:
    instructions = parse_dockerfile((REPO_ROOT / name / "Dockerfile").read_text())
    names = set()
    for instruction in instructions:
        if instruction.keyword == "ENV":
            names |= set(env_assignments(instruction.args))
    return names - RUNTIME_VARS


def compose_env(name: str) -> set[str]:
    environment = load_yaml(COMPOSE_FILE)["services"][name].get("environment", {})
    if isinstance(environment, list):
        return {item.split("=", 1)[0] for item in environment}
    return set(environment)


def openshift_env(name: str) -> set[str]:
    objects = process_template(load_yaml(TEMPLATE_FILE), {"SOURCE_REPOSITORY_URL": "https://example.invalid/dss.git"})
    config = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("ConfigMap", "Secret")}
    names = set()
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["name"] != name:
                continue
            names |= {item["name"] for item in container.get("env", [])}
            for source in container.get("envFrom", []):
                kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source \
                    else ("Secret", source["secretRef"])
                data = config[(kind, ref["name"])]
                names |= set(data.get("data", {})) | set(data.get("stringData", {}))
    assert names, f"no container named {name} in the OpenShift template"
    return names


@pytest.mark.parametrize("name", COMPONENTS)
@pytest.mark.parametrize("where", ["compose", "openshift", "dockerfile"])
def test_every_variable_set_is_read_by_the_component(name, where):
    set_there = {"compose": compose_env, "openshift": openshift_env, "dockerfile": dockerfile_env}[where](name)
    unread = set_there - reads(name) - set(LIBRARY_VARS[name])
    assert not unread, f"{where} sets {sorted(unread)} for {name}, but its config.py never reads them"


@pytest.mark.parametrize("name", COMPONENTS)
@pytest.mark.parametrize("where", ["compose", "openshift"])
def test_every_variable_read_is_set_by_the_deployment(name, where):
    set_there = {"compose": compose_env, "openshift": openshift_env}[where](name) | dockerfile_env(name)
    missing = reads(name) - set_there - set(NOT_DEPLOYED[name])
    assert not missing, f"{name} reads {sorted(missing)}, which {where} does not set"


@pytest.mark.parametrize("where", ["compose", "openshift"])
def test_db_variables_are_the_postgres_image_and_init_script_ones(where):
    init_vars = set()
    for script in (REPO_ROOT / "db" / "initdb").glob("*.sh"):
        init_vars |= set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", script.read_text()))
    set_there = compose_env("db") if where == "compose" else openshift_env("db")
    assert set_there <= POSTGRES_IMAGE_VARS | init_vars, sorted(set_there - POSTGRES_IMAGE_VARS - init_vars)
    assert "ITK_SNAP_SERVER_DATABASE_PASSWORD" in set_there and "POSTGRES_PASSWORD" in set_there


def test_database_settings_agree_between_db_and_web_server():
    compose = load_yaml(COMPOSE_FILE)["services"]
    for variable in ("ITK_SNAP_SERVER_DATABASE_NAME", "ITK_SNAP_SERVER_DATABASE_USERNAME",
                     "ITK_SNAP_SERVER_DATABASE_PASSWORD"):
        assert compose["db"]["environment"][variable] == compose["web-server"]["environment"][variable]
    assert compose["web-server"]["environment"]["POSTGRES_PORT_5432_TCP_ADDR"] == "db"


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_variable_read_is_documented_in_its_docs(name):
    """Every setting a component reads is documented on its pages of docs/ (its settings tables)."""
    names = reads(name)
    pages = COMPONENTS[name].settings_pages
    missing = [page.name for page in pages if not page.exists()]
    assert not missing, f"docs/ lacks {name}'s settings pages {missing}"
    text = "".join(page.read_text() for page in pages)
    undocumented = sorted(n for n in names if not re.search(rf"\b{re.escape(n)}\b", text))
    assert not undocumented, f"{[p.name for p in pages]} do not document {name}'s settings {undocumented}"
