"""Settings: read from the environment in config.py only, by literal names, with the
defaults docs/inference.md documents."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dss_inference import config
from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "inference-server" / "dss_inference"
SETTINGS_PAGE = REPO_ROOT / "docs" / "inference.md"


def environment_reads(path: Path) -> list[tuple[str, object]]:
    """(how, name) of every environment access in a module; name is None when not literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            found.append(("os." + node.attr, None))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_env":
            first = node.args[0] if node.args else None
            literal = first.value if isinstance(first, ast.Constant) else None
            found.append(("_env", literal))
    return found


def test_only_config_reads_the_environment():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "config.py":
            assert environment_reads(path) == [], f"{path} reads the environment"


def test_config_reads_literal_names_that_the_docs_document():
    reads = environment_reads(PACKAGE / "config.py")
    names = [name for how, name in reads if how == "_env"]
    assert None not in names
    documented = set(re.findall(r"`([A-Z_]+)`", SETTINGS_PAGE.read_text()))
    assert set(names) <= documented, set(names) - documented


def test_defaults_and_overrides(monkeypatch):
    for name in ("INFERENCE_PORT", "INFERENCE_WORKERS", "INFERENCE_MAX_VOXELS", "INFERENCE_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    defaults = config.load_config()
    assert (defaults.port, defaults.workers, defaults.max_voxels, defaults.device) == \
        (8081, None, 3 * 10**8, "auto")
    monkeypatch.setenv("INFERENCE_MAX_VOXELS", "2.5e8")
    monkeypatch.setenv("INFERENCE_WORKERS", "")  # compose passes an empty value: the default
    monkeypatch.setenv("INFERENCE_DEVICE", "CPU")
    settings = config.load_config()
    assert (settings.max_voxels, settings.workers, settings.device) == (250_000_000, None, "cpu")


def test_a_malformed_value_names_its_variable(monkeypatch):
    monkeypatch.setenv("INFERENCE_QUEUE_SIZE", "eight")
    with pytest.raises(config.ConfigError, match="^INFERENCE_QUEUE_SIZE='eight' is not a valid integer$"):
        config.load_config()


def test_out_of_range_values_are_refused(monkeypatch):
    monkeypatch.setenv("INFERENCE_WORKERS", "0")
    with pytest.raises(config.ConfigError, match="workers must be at least 1"):
        config.load_config()


def test_json_log_lines_when_asked(monkeypatch, capsys):
    import json
    import logging

    from dss_inference import logs

    monkeypatch.setenv("DSS_LOG_JSON", "yes")
    assert config.load_config().log_json is True
    monkeypatch.setenv("DSS_LOG_JSON", "Off")  # the words the other components take
    assert config.load_config().log_json is False
    monkeypatch.setenv("DSS_LOG_JSON", "maybe")
    with pytest.raises(config.ConfigError, match="^DSS_LOG_JSON='maybe' is not a valid flag$"):
        config.load_config()
    previous = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        logs.configure(json_lines=True)
        logging.getLogger("dss_inference.jobs").info("job %s done", "abc")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers[:], level = previous
        logging.getLogger().setLevel(level)
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "dss_inference.jobs", "job abc done")
