"""Settings of the dispatcher: the environment and the services file. The only module of
dss_dispatcher that reads the environment."""
from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml

OUTPUT_KINDS = ("lungs", "nodules")
MAX_PORT = 65535


class ConfigError(ValueError):
    """A setting or services file the dispatcher cannot work with; the message says which."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service this dispatcher provides, and how to compute it."""

    service: str             # 40-hex githash, or the service name (all its registered versions)
    endpoint: str            # inference route, e.g. /lung_segmentation/inference
    inference_url: str       # base URL of the inference server
    output: str              # lungs | nodules
    input_tag: str = ""      # layer tag holding the input image; "" = the main layer
    provider: str = ""       # provider name for claims; "" = DSS_PROVIDER_NAME

    @property
    def label(self) -> str:
        return self.service if len(self.service) != 40 else self.service[:8]


@dataclass(frozen=True)
class Settings:
    server_url: str
    provider_token: str
    provider_name: str
    provider_code: str
    workers: int
    shared_datastore: Path | None
    metrics_port: int
    log_json: bool
    work_dir: Path
    claim_wait: float          # seconds a claim long-polls on the server
    poll_interval: float       # pause after an empty claim that came back at once
    retry_budget: float        # seconds a transient failure is retried before the ticket fails
    inference_timeout: float   # seconds an inference job may take
    services: tuple[ServiceSpec, ...] = field(default_factory=tuple)


def _env(name: str, default: str | None) -> str | None:
    value = os.environ.get(name, default)
    return default if value == "" else value


def _number(name: str, text: str | None, kind=float, minimum=0, maximum=None):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):   # nan would pass every comparison below
        raise ConfigError(f"{name} must be a finite number, got {text!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _flag(name: str) -> bool:
    """1/true/yes/on or 0/false/no/off, as the web server and the inference server read them."""
    text = (_env(name, "0") or "0").strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ConfigError(f"{name} must be 1 or 0 (also true/false, yes/no, on/off), got {text!r}")
    return text in ("1", "true", "yes", "on")


def _port(name: str, default: str, minimum: int = 0) -> int:
    return _number(name, _env(name, default), int, minimum, MAX_PORT)


def _http_url(name: str, text: str) -> str:
    """The whole of `text` is an http(s) URL with a host (and a valid port, if any)."""
    try:
        parts = urlsplit(text)
        valid = (parts.scheme in ("http", "https") and bool(parts.hostname)
                 and not re.search(r"\s", text) and (parts.port or 0) >= 0)
    except ValueError:   # a port that is not a number in 0-65535
        valid = False
    if not valid:
        raise ConfigError(f"{name} must be http://HOST[:PORT] or https://HOST[:PORT], "
                          f"got {text!r}")
    return text.rstrip("/")


def builtin_services(lung_url: str, nodule_url: str) -> tuple[ServiceSpec, ...]:
    """The services of `services/` in this repository, on the project's inference server."""
    return (ServiceSpec("LungSegmentation", "/lung_segmentation/inference", lung_url, "lungs", "CT"),
            ServiceSpec("LungNoduleDetection", "/nodule_detection/inference", nodule_url,
                        "nodules", "CT"))


def parse_services(text: str, defaults: dict[str, str], source: str = "services file"
                   ) -> tuple[ServiceSpec, ...]:
    """Services from YAML or JSON: a list (or `{"services": [...]}`) of mappings with keys
    `service` (githash or name), `endpoint`, `output` (lungs|nodules), and optional
    `inference_url` (default by output kind), `input_tag`, `provider`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML/JSON: {exc}") from None
    if isinstance(document, dict):
        document = document.get("services")
    if not isinstance(document, list) or not document:
        raise ConfigError(f"{source} must hold a non-empty list of services")
    return tuple(_parse_service(item, defaults, f"{source}, service {i + 1}")
                 for i, item in enumerate(document))


def _parse_service(item, defaults: dict[str, str], where: str) -> ServiceSpec:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping, got {item!r}")
    unknown = set(item) - {"service", "githash", "name", "endpoint", "output", "inference_url",
                           "input_tag", "provider"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    service = str(item.get("service") or item.get("githash") or item.get("name") or "").strip()
    output = str(item.get("output", "")).strip()
    endpoint = str(item.get("endpoint", "")).strip()
    if not service:
        raise ConfigError(f"{where}: 'service' (githash or name) is required")
    if output not in OUTPUT_KINDS:
        raise ConfigError(f"{where}: 'output' must be one of {OUTPUT_KINDS}, got {output!r}")
    if not endpoint.startswith("/"):
        raise ConfigError(f"{where}: 'endpoint' must be a path such as /lung_segmentation/inference")
    url = _http_url(f"{where}: 'inference_url'", str(item.get("inference_url") or defaults[output]))
    return ServiceSpec(service, endpoint, url, output, str(item.get("input_tag") or "").strip(),
                       str(item.get("provider") or "").strip())


def load_settings() -> Settings:
    # checked here whatever uses them: a bad URL would otherwise fail every ticket
    lung_url = _http_url("LUNG_SEGMENTATION_SERVICE_URL",
                         _env("LUNG_SEGMENTATION_SERVICE_URL", "http://127.0.0.1:8081"))
    nodule_url = _http_url("NODULE_DETECTION_SERVICE_URL",
                           _env("NODULE_DETECTION_SERVICE_URL", "http://127.0.0.1:8081"))
    services_file = _env("DSS_SERVICES_FILE", None)
    if services_file:
        try:
            text = Path(services_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"DSS_SERVICES_FILE: cannot read {services_file}: {exc}") from None
        services = parse_services(text, {"lungs": lung_url, "nodules": nodule_url}, services_file)
    else:
        services = builtin_services(lung_url, nodule_url)
    token = (_env("DSS_PROVIDER_TOKEN", "") or "").strip()
    if not token:
        raise ConfigError("DSS_PROVIDER_TOKEN is required: a reusable provider token "
                          "(python -m dss_server issue-token EMAIL --reusable)")
    provider = _env("DSS_PROVIDER_NAME", "local")
    shared = _env("DSS_SHARED_DATASTORE", None)
    return Settings(
        server_url=_http_url("SERVER_URL", _env("SERVER_URL", "http://127.0.0.1:8080")),
        provider_token=token,
        provider_name=provider,
        provider_code=_env("DSS_PROVIDER_CODE", socket.gethostname()),
        workers=_number("DSS_WORKERS", _env("DSS_WORKERS", "1"), int, 1),
        shared_datastore=Path(shared) if shared else None,
        metrics_port=_port("DSS_METRICS_PORT", "9100"),
        log_json=_flag("DSS_LOG_JSON"),
        work_dir=Path(_env("DSS_WORK_DIR", "./var/dispatcher")),
        claim_wait=_number("DSS_CLAIM_WAIT", _env("DSS_CLAIM_WAIT", "20")),
        poll_interval=_number("DSS_POLL_INTERVAL", _env("DSS_POLL_INTERVAL", "5")),
        retry_budget=_number("DSS_RETRY_BUDGET", _env("DSS_RETRY_BUDGET", "120")),
        inference_timeout=_number("DSS_INFERENCE_TIMEOUT", _env("DSS_INFERENCE_TIMEOUT", "1800"), float, 1),
        services=tuple(replace(s, provider=s.provider or provider) for s in services),
    )


@dataclass(frozen=True)
class DevStackSettings:
    """What `make up` needs: the ports of the three processes it starts."""

    web_port: int
    inference_port: int
    metrics_port: int


def load_devstack_settings() -> DevStackSettings:
    return DevStackSettings(
        web_port=_port("PORT", "8080", 1),
        inference_port=_port("INFERENCE_PORT", "8081", 1),
        metrics_port=_port("DSS_METRICS_PORT", "9100"))


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process: ours, with `overrides` on top."""
    return {**os.environ, **overrides}
