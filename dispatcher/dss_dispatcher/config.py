"""Settings of the dispatcher: the environment and the services file. The only module of
dss_dispatcher that reads the environment; the settings every provider shares are read by the
SDK's (dss_client.sdk.config)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from dss_client.sdk import config as sdk_config
from dss_client.sdk.config import ConfigError, _env, _number, _port, child_environment  # noqa: F401  (devstack's)
from dss_client.sdk.config import http_url as _http_url

OUTPUT_KINDS = ("lungs", "nodules")


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
class Config(sdk_config.Config):
    inference_timeout: float   # seconds an inference job may take
    services: tuple[ServiceSpec, ...] = field(default_factory=tuple)


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


def load_config() -> Config:
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
    common = sdk_config.provider_settings()
    return Config(
        **common,
        inference_timeout=_number("DSS_INFERENCE_TIMEOUT", _env("DSS_INFERENCE_TIMEOUT", "1800"), float, 1),
        services=tuple(replace(s, provider=s.provider or common["provider_name"]) for s in services),
    )


@dataclass(frozen=True)
class DevStackConfig:
    """What `make up` needs: the ports of the three processes it starts."""

    web_port: int
    inference_port: int
    metrics_port: int


def load_devstack_config() -> DevStackConfig:
    return DevStackConfig(
        web_port=_port("PORT", "8080", 1),
        inference_port=_port("INFERENCE_PORT", "8081", 1),
        metrics_port=_port("DSS_METRICS_PORT", "9100"))
