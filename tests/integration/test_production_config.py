"""config/production.example.toml starts as it is, with only the secrets and site paths the
environment must give it; and production refuses unsafe outbound settings (plain-http SMS and
verifier URLs, the loopback allowance, jobs inside users' requests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idp import create_app
from idp.security.pii import Keyring
from idp.settings import ConfigurationError, load_settings
from tests.conftest import CHEAP_ARGON2

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "production.example.toml"


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """What an operator's environment supplies; nothing of the file is overridden."""
    for name in list(os.environ):
        if name.startswith("IDP_") or name == "PORT":
            monkeypatch.delenv(name)
    keyring = tmp_path / "pii-keyring.json"
    Keyring.load(keyring, create=True)  # an operator creates it once (mode 0600)
    env = {
        "IDP_CONFIG": str(EXAMPLE),
        "IDP_SECRET_KEY": "a-production-secret-key-of-reasonable-length-0123456789",
        "IDP_SMS_HTTP_SECRET": "sms-shared-secret",
        "IDP_VERIFIER_SECRET": "verifier-shared-secret",
        "IDP_DATABASE_URL": "postgresql+psycopg://idp:secret@127.0.0.1:1/idp_never_connected",
        "IDP_INSTANCE_DIR": str(tmp_path / "instance"),
        "IDP_PII_KEYRING": str(keyring),  # the file names /etc/idp/…, a path of the real host
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_the_production_example_passes_validation_and_the_app_starts(environment):
    app = create_app(CHEAP_ARGON2)
    cfg = app.config
    assert cfg["ENV"] == "production" and cfg["ISSUER"] == "https://login.example.gov.cn"
    assert cfg["VERIFIER"] == "http" and cfg["VERIFIER_URL"].startswith("https://")
    assert cfg["SMS_GATEWAY"] == "http" and cfg["SMS_HTTP_URL"].startswith("https://")
    assert cfg["JOBS_INLINE"] is False and cfg["ALLOW_LOOPBACK_HTTP"] is False
    services = app.extensions["idp.services"]
    assert type(services.verifier).__name__ == "HttpVerifier" and services.verifier.policy.production
    assert type(services.sms).__name__ == "HttpSmsSender" and services.sms.policy.production


def test_the_production_example_loads_in_a_fresh_process_as_idp_serve_would(environment):
    """The configuration `idp serve` and every `idp` command build, in their own process."""
    code = ("from idp import create_app; app = create_app(); "
            "print(app.config['ENV'], app.config['VERIFIER'], app.config['JOBS_INLINE'])")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **environment},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["production", "http", "False"]


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("IDP_SMS_HTTP_URL", "http://sms-gateway.example.gov.cn/send", "IDP_SMS_HTTP_URL"),
    ("IDP_VERIFIER_URL", "http://verify.example.gov.cn/check", "IDP_VERIFIER_URL"),
    ("IDP_VERIFIER_URL", "http://127.0.0.1:9000/check", "IDP_VERIFIER_URL"),
    ("IDP_VERIFIER_URL", "https://10.0.0.7/check", "IDP_VERIFIER_URL"),
    ("IDP_SMS_HTTP_URL", "https://user:pw@sms.example.gov.cn/send", "IDP_SMS_HTTP_URL"),
    ("IDP_ALLOW_LOOPBACK_HTTP", "on", "IDP_ALLOW_LOOPBACK_HTTP"),
    ("IDP_JOBS_INLINE", "on", "IDP_JOBS_INLINE"),
])
def test_production_refuses_unsafe_outbound_settings(environment, monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_development_allows_plain_http_services_on_loopback_only_with_the_setting(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("IDP_"):
            monkeypatch.delenv(name)
    base = {"INSTANCE_DIR": str(tmp_path), "VERIFIER": "http", "VERIFIER_URL": "http://127.0.0.1:9000/check"}
    cfg = load_settings(base)
    assert cfg["ALLOW_LOOPBACK_HTTP"] is True and cfg["JOBS_INLINE"] is True  # development defaults
    with pytest.raises(ConfigurationError, match="IDP_VERIFIER_URL"):
        load_settings({**base, "ALLOW_LOOPBACK_HTTP": "off"})
    with pytest.raises(ConfigurationError, match="IDP_VERIFIER_URL"):
        load_settings({**base, "VERIFIER_URL": "http://verify.example.cn/check"})
