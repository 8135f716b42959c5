"""openshift/template.yaml parses, every parameter is declared and used, and the processed
objects hold together: selectors, ports, volumes, ConfigMaps/Secrets, probes, resources."""
from __future__ import annotations

import json
import re

import pytest

from deploy_files import TEMPLATE_FILE, load_yaml, process_template, template_parameter_names
from helpers import REPO_ROOT

TEMPLATE = load_yaml(TEMPLATE_FILE)
OBJECTS = process_template(TEMPLATE, {"SOURCE_REPOSITORY_URL": "https://example.invalid/dss.git"})
API_VERSIONS = {
    "Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
    "PersistentVolumeClaim": "v1", "Route": "route.openshift.io/v1",
    "ImageStream": "image.openshift.io/v1", "BuildConfig": "build.openshift.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
COMPONENT_MOUNTS = {"web-server": "/app/datastore", "dispatcher": "/datastore",
                    "inference-server": "/wmlce/data/output", "db": "/var/lib/postgresql/data"}


def of_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in OBJECTS if o["kind"] == kind}


def pod_specs():
    return [(name, d["spec"]["template"]["spec"]) for name, d in of_kind("Deployment").items()]


def test_template_parameters_are_declared_used_and_described():
    declared = [p["name"] for p in TEMPLATE["parameters"]]
    assert len(declared) == len(set(declared)), "duplicate parameter"
    used = template_parameter_names(json.dumps(TEMPLATE["objects"]) + TEMPLATE.get("message", ""))
    assert used - set(declared) == set(), "used but not declared"
    assert set(declared) - used == set(), "declared but never used"
    for parameter in TEMPLATE["parameters"]:
        assert parameter.get("required") or "value" in parameter or "generate" in parameter, parameter


def test_required_parameter_without_value_is_refused():
    with pytest.raises(KeyError, match="SOURCE_REPOSITORY_URL"):
        process_template(TEMPLATE)


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o.get('kind')}/{o.get('metadata', {}).get('name')}")
def test_every_object_has_api_version_kind_and_name(obj):
    assert API_VERSIONS.get(obj["kind"]) == obj["apiVersion"], f"{obj['kind']}: {obj['apiVersion']}"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])
    assert obj["metadata"]["labels"]["app"] == "dss"


def test_names_are_unique_per_kind():
    keys = [(o["kind"], o["metadata"]["name"]) for o in OBJECTS]
    assert len(keys) == len(set(keys))


def test_all_four_components_are_deployed():
    assert set(of_kind("Deployment")) == {f"dss-{c}" for c in COMPONENT_MOUNTS}


@pytest.mark.parametrize("name,deployment", of_kind("Deployment").items())
def test_deployment_selector_matches_its_pods(name, deployment):
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert isinstance(deployment["spec"]["replicas"], int), "use ${{PARAM}} for numbers"


@pytest.mark.parametrize("name,pod", pod_specs())
def test_containers_have_probes_resources_and_a_restricted_security_context(name, pod):
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "runAsUser" not in pod["securityContext"], "OpenShift assigns the UID"
    for container in pod.get("initContainers", []) + pod["containers"]:
        resources = container["resources"]
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[section]), f"{container['name']}: {section}"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for container in pod["containers"]:
        assert "readinessProbe" in container and "livenessProbe" in container, container["name"]
        port_names = {port["name"] for port in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            http = container.get(probe, {}).get("httpGet")
            if http:
                assert http["path"] in ("/healthz", "/readyz") and http["port"] in port_names


def test_http_components_probe_readyz_for_readiness_and_healthz_for_liveness():
    for name in ("dss-web-server", "dss-inference-server"):
        container = of_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_inference_server_requests_a_gpu_and_tolerates_gpu_nodes():
    pod = of_kind("Deployment")["dss-inference-server"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


@pytest.mark.parametrize("name,pod", pod_specs())
def test_volumes_mounts_and_claims_resolve(name, pod):
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts = {}
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{name}: mount of undeclared volume {mount['name']}"
            mounts[mount["mountPath"]] = volumes[mount["name"]]
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in of_kind("PersistentVolumeClaim")
    assert COMPONENT_MOUNTS[name.removeprefix("dss-")] in mounts


def test_web_server_and_dispatcher_share_the_rwx_datastore():
    claims = of_kind("PersistentVolumeClaim")
    assert claims["dss-datastore"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claims["dss-db-data"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    for claim in claims.values():
        assert claim["spec"]["resources"]["requests"]["storage"]
    deployments = of_kind("Deployment")
    for name in ("dss-web-server", "dss-dispatcher"):
        volumes = deployments[name]["spec"]["template"]["spec"]["volumes"]
        assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "dss-datastore" for v in volumes)
    assert deployments["dss-db"]["spec"]["strategy"]["type"] == "Recreate", "RWO volume: no overlap"


@pytest.mark.parametrize("name,pod", pod_specs())
def test_config_maps_and_secrets_referenced_exist(name, pod):
    config_maps, secrets = of_kind("ConfigMap"), of_kind("Secret")
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
            else:
                assert source["secretRef"]["name"] in secrets
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"]


def test_secrets_hold_the_secrets_and_config_maps_hold_none():
    secret_names = {"POSTGRES_PASSWORD", "ITK_SNAP_SERVER_DATABASE_PASSWORD", "DSS_SECRET_KEY",
                    "DSS_PROVIDER_TOKEN", "DSS_OIDC_CLIENT_SECRET"}
    in_secrets = {key for s in of_kind("Secret").values() for key in s["stringData"]}
    in_config_maps = {key for c in of_kind("ConfigMap").values() for key in c["data"]}
    assert in_secrets == secret_names and not in_config_maps & secret_names
    generated = {p["name"] for p in TEMPLATE["parameters"] if p.get("generate") == "expression"}
    assert {"DATABASE_PASSWORD", "POSTGRES_PASSWORD", "DSS_SECRET_KEY"} <= generated


def test_web_server_gets_only_the_database_user_password_not_the_superuser():
    container = of_kind("Deployment")["dss-web-server"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "dss-db"}} not in container["envFrom"]


@pytest.mark.parametrize("name,service", of_kind("Service").items())
def test_services_select_pods_and_named_ports(name, service):
    selector = service["spec"]["selector"]
    matches = [(n, pod) for n, pod in pod_specs()
               if selector.items() <= of_kind("Deployment")[n]["spec"]["template"]["metadata"]["labels"].items()]
    assert len(matches) == 1, f"{name} selects {len(matches)} deployments"
    port_names = {p["name"] for c in matches[0][1]["containers"] for p in c.get("ports", [])}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names


def test_inference_service_keeps_a_poller_on_its_replica():
    assert of_kind("Service")["dss-inference-server"]["spec"]["sessionAffinity"] == "ClientIP"


def test_route_targets_the_web_server_with_a_long_timeout():
    route = of_kind("Route")["dss-web-server"]
    timeout = route["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"]
    value, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)", timeout).groups()
    seconds = int(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert seconds >= 600, "large uploads need more than the router's 30 s default"
    service = of_kind("Service")[route["spec"]["to"]["name"]]
    assert route["spec"]["port"]["targetPort"] in {p["name"] for p in service["spec"]["ports"]}
    assert route["spec"]["tls"]["termination"] == "edge"


def test_images_are_built_from_the_component_folders_and_trigger_rollouts():
    streams, builds = of_kind("ImageStream"), of_kind("BuildConfig")
    for build in builds.values():
        context = REPO_ROOT / build["spec"]["source"]["contextDir"]
        assert (context / build["spec"]["strategy"]["dockerStrategy"]["dockerfilePath"]).exists()
        assert build["spec"]["output"]["to"]["name"].split(":")[0] in streams
    for name, deployment in of_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}
        triggers = json.loads(deployment["metadata"]["annotations"]["image.openshift.io/triggers"])
        triggered = set()
        for trigger in triggers:
            stream = trigger["from"]["name"].split(":")[0]
            assert stream in streams and stream in builds
            container = re.search(r'@\.name=="([^"]+)"', trigger["fieldPath"]).group(1)
            assert containers[container]["image"] == trigger["from"]["name"]
            triggered.add(container)
        assert triggered == set(containers), f"{name}: every container follows its image stream"


def test_database_is_reachable_only_from_the_web_server():
    policy = of_kind("NetworkPolicy")["dss-db"]
    assert policy["spec"]["podSelector"]["matchLabels"]["component"] == "db"
    sources = policy["spec"]["ingress"][0]["from"]
    assert [s["podSelector"]["matchLabels"]["component"] for s in sources] == ["web-server"]
