"""Settings from the environment: bad values are named at start, flags are never guessed."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dss_server.config import ConfigError, load_config

BAD_VALUES = [
    ("PORT", "x"), ("PORT", "70000"), ("PORT", "80.5"),
    ("DSS_CLAIM_LEASE", "abc"), ("DSS_CLAIM_LEASE", "nan"), ("DSS_CLAIM_LEASE", "0"),
    ("DSS_MAX_ATTEMPTS", "0"), ("DSS_MAX_ATTEMPTS", "1.5"),
    ("DSS_MAX_UPLOAD_BYTES", "-5"), ("DSS_MAX_UPLOAD_BYTES", "inf"),
    ("DSS_LOG_JSON", "maybe"), ("ITK_SNAP_SERVER_NOAUTH", "enabled"),
    ("DSS_OIDC_ALLOWED_DOMAINS", "@example.org"), ("DSS_OIDC_ALLOWED_DOMAINS", "a.org,,b.org"),
    ("DSS_OIDC_ALLOWED_DOMAINS", "a.org; b.org"),
]


@pytest.fixture
def environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("DSS_SECRET_KEY", "config-test")
    for name in ("PORT", "DSS_CLAIM_LEASE", "DSS_MAX_ATTEMPTS", "DSS_MAX_UPLOAD_BYTES",
                 "DSS_LOG_JSON", "ITK_SNAP_SERVER_NOAUTH", "DSS_OIDC_ALLOWED_DOMAINS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("name, value", BAD_VALUES)
def test_a_bad_value_is_named(environment, name, value):
    environment.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name}='{value}': expected "):
        load_config()


@pytest.mark.parametrize("value, on", [("1", True), ("TRUE", True), ("yes", True), ("on", True),
                                       ("0", False), ("false", False), ("No", False),
                                       ("off", False), ("", False)])
def test_flags_read_words_both_ways(environment, value, on):
    environment.setenv("ITK_SNAP_SERVER_NOAUTH", value)
    environment.setenv("DSS_LOG_JSON", value)
    config = load_config()
    assert (config.noauth, config.log_json) == (on, on)


def test_numbers_in_range_and_empty_values_take_the_default(environment):
    environment.setenv("DSS_MAX_UPLOAD_BYTES", "4e9")
    environment.setenv("DSS_CLAIM_LEASE", "")  # compose passes unset variables as ""
    environment.setenv("PORT", " 9000 ")
    config = load_config()
    assert (config.max_upload_bytes, config.claim_lease, config.port) == (4_000_000_000, 600, 9000)


def test_oidc_allowed_domains_are_a_lower_case_list_and_unset_is_any(environment):
    assert load_config().oidc_allowed_domains == ()
    environment.setenv("DSS_OIDC_ALLOWED_DOMAINS", " Hospital.Example , lab.hospital.example")
    assert load_config().oidc_allowed_domains == ("hospital.example", "lab.hospital.example")


def test_the_server_refuses_to_start_with_one_clear_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
           "DSS_SECRET_KEY": "x", "DSS_CLAIM_LEASE": "ten minutes"}
    result = subprocess.run([sys.executable, "-m", "dss_server", "run"], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: DSS_CLAIM_LEASE='ten minutes': expected a number "
                                     "of at least 1")
