"""Dispatcher settings: environment and services file (YAML or JSON)."""
from __future__ import annotations

import json

import pytest

from dss_dispatcher.config import ConfigError, load_config, parse_services

DEFAULTS = {"lungs": "http://lungs:8080", "nodules": "http://nodules:8080"}


@pytest.fixture
def env(monkeypatch):
    for name in ("SERVER_URL", "DSS_SERVICES_FILE", "DSS_WORKERS", "DSS_PROVIDER_NAME",
                 "LUNG_SEGMENTATION_SERVICE_URL", "NODULE_DETECTION_SERVICE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSS_PROVIDER_TOKEN", "ab" * 24)
    return monkeypatch


def test_builtin_services_use_the_seed_variables(env):
    env.setenv("LUNG_SEGMENTATION_SERVICE_URL", "http://gpu-a:8080/")
    env.setenv("NODULE_DETECTION_SERVICE_URL", "http://gpu-b:8080")
    env.setenv("DSS_PROVIDER_NAME", "IBM-LAB")
    settings = load_config()
    assert settings.server_url == "http://127.0.0.1:8080"
    assert [(s.service, s.endpoint, s.inference_url, s.output, s.input_tag, s.provider)
            for s in settings.services] == [
        ("LungSegmentation", "/lung_segmentation/inference", "http://gpu-a:8080", "lungs", "CT", "IBM-LAB"),
        ("LungNoduleDetection", "/nodule_detection/inference", "http://gpu-b:8080", "nodules", "CT",
         "IBM-LAB")]
    assert settings.workers == 1 and settings.metrics_port == 9100


def test_token_is_required(env):
    env.delenv("DSS_PROVIDER_TOKEN")
    with pytest.raises(ConfigError, match="DSS_PROVIDER_TOKEN"):
        load_config()


def test_a_server_url_without_scheme_is_named(env):
    env.setenv("SERVER_URL", "dss.example.org:8080")
    with pytest.raises(ConfigError, match="SERVER_URL must be http"):
        load_config()


def test_bad_numbers_are_named(env):
    env.setenv("DSS_WORKERS", "many")
    with pytest.raises(ConfigError, match="DSS_WORKERS"):
        load_config()
    env.setenv("DSS_WORKERS", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        load_config()


def test_yaml_services_file(env, tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("""
services:
  - service: 6e8775d466d865ce30eab35aa6d9a871a5d39816
    endpoint: /lung_segmentation/inference
    output: lungs
    input_tag: MainImage
  - name: CancerDetection
    endpoint: /nodule_detection/inference
    inference_url: http://cancer:9000
    output: nodules
    provider: other-lab
""")
    env.setenv("DSS_SERVICES_FILE", str(path))
    env.setenv("DSS_PROVIDER_NAME", "lab")
    first, second = load_config().services
    assert first.service == "6e8775d466d865ce30eab35aa6d9a871a5d39816" and first.label == "6e8775d4"
    assert (first.inference_url, first.input_tag, first.provider) == \
        ("http://127.0.0.1:8081", "MainImage", "lab")
    assert (second.service, second.inference_url, second.provider) == \
        ("CancerDetection", "http://cancer:9000", "other-lab")


def test_json_services_file_as_a_list():
    text = json.dumps([{"service": "X", "endpoint": "/x/inference", "output": "nodules"}])
    (spec,) = parse_services(text, DEFAULTS)
    assert spec.inference_url == "http://nodules:8080" and spec.input_tag == ""


@pytest.mark.parametrize("text, message", [
    ("[]", "non-empty list"),
    ("services: {a: 1}", "non-empty list"),
    ("- {endpoint: /x, output: lungs}", "'service'"),
    ("- {service: X, endpoint: /x, output: liver}", "'output'"),
    ("- {service: X, endpoint: x, output: lungs}", "'endpoint'"),
    ("- {service: X, endpoint: /x, output: lungs, inference_url: ftp://x}", "inference_url"),
    ("- {service: X, endpoint: /x, output: lungs, colour: red}", "unknown keys"),
    ("- [unclosed", "not valid"),
])
def test_bad_services_files_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_services(text, DEFAULTS)


def test_the_daemon_refuses_to_start_without_a_token(tmp_path):
    import os
    import subprocess

    from helpers import PYTHON
    env = {k: v for k, v in os.environ.items() if k != "DSS_PROVIDER_TOKEN"}
    result = subprocess.run([PYTHON, "-m", "dss_dispatcher"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "DSS_PROVIDER_TOKEN is required" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["LUNG_SEGMENTATION_SERVICE_URL", "NODULE_DETECTION_SERVICE_URL"])
@pytest.mark.parametrize("value", ["lung-host:8081", "ftp://lung-host", "http://", "http://h:99999"])
def test_inference_urls_from_the_environment_are_checked(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name} must be http://HOST"):
        load_config()


def test_inference_urls_are_checked_with_a_services_file_too(env, tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("- {service: LungSegmentation, endpoint: /x/inference, output: lungs}\n")
    env.setenv("DSS_SERVICES_FILE", str(path))
    env.setenv("LUNG_SEGMENTATION_SERVICE_URL", "lung-host:8081")
    with pytest.raises(ConfigError, match="LUNG_SEGMENTATION_SERVICE_URL"):
        load_config()


@pytest.mark.parametrize("value", ["http://127.0.0.1:9 junk", "http://h:8080x", "https:///path"])
def test_the_whole_server_url_is_checked(env, value):
    env.setenv("SERVER_URL", value)
    with pytest.raises(ConfigError, match="SERVER_URL must be http"):
        load_config()


def test_a_server_url_with_a_path_is_kept(env):
    env.setenv("SERVER_URL", "https://dss.example.org:8443/dss/")
    assert load_config().server_url == "https://dss.example.org:8443/dss"


@pytest.mark.parametrize("name", ["DSS_CLAIM_WAIT", "DSS_POLL_INTERVAL", "DSS_RETRY_BUDGET",
                                  "DSS_INFERENCE_TIMEOUT"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
        load_config()


@pytest.mark.parametrize("value", ["70000", "65536"])
def test_a_port_out_of_range_is_named(env, value):
    env.setenv("DSS_METRICS_PORT", value)
    with pytest.raises(ConfigError, match="DSS_METRICS_PORT must be at most 65535"):
        load_config()


@pytest.mark.parametrize("value, on", [("1", True), ("On", True), ("yes", True), ("false", False),
                                       ("off", False), ("", False)])
def test_log_json_reads_the_words_the_other_components_read(env, value, on):
    env.setenv("DSS_LOG_JSON", value)
    assert load_config().log_json is on


def test_a_log_json_value_that_is_no_flag_is_named(env):
    env.setenv("DSS_LOG_JSON", "maybe")
    with pytest.raises(ConfigError, match="DSS_LOG_JSON must be 1 or 0"):
        load_config()
