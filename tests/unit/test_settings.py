"""Configuration: environment > IDP_CONFIG TOML file > built-in default, derived values, and the
refusals of unsafe production settings (INTERFACES.md, "Configuration")."""

from __future__ import annotations

import os

import pytest

from idp.settings import SETTINGS, ConfigurationError, load_settings

# A production configuration that passes every check; each refusal test breaks one thing.
SAFE_PRODUCTION = {
    "IDP_ENV": "production",
    "IDP_ISSUER": "https://login.most.example.cn",
    "IDP_DATABASE_URL": "postgresql+psycopg://idp@db.internal/idp",
    "IDP_SECRET_KEY": "k" * 48,
    "IDP_SMS_GATEWAY": "http",
    "IDP_VERIFIER": "http",
    "IDP_CAPTCHA": "on",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No IDP_* or PORT from the outside world leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("IDP_") or name == "PORT":
            monkeypatch.delenv(name)


@pytest.fixture
def instance(tmp_path):
    return tmp_path / "instance"


def load(instance, **overrides):
    return load_settings({"INSTANCE_DIR": str(instance), **overrides})


def write_toml(tmp_path, body: str):
    path = tmp_path / "idp.toml"
    path.write_text(body, encoding="utf-8")
    return path


# --- precedence ------------------------------------------------------------------------------


def test_defaults_apply_without_environment_or_file(instance):
    cfg = load(instance)
    for setting in SETTINGS:
        if setting.default is not None and setting.key != "INSTANCE_DIR":
            assert cfg[setting.key] == setting.parse(setting.default), setting.key
    assert cfg["CAPTCHA"] == "on"
    assert cfg["SMS_GATEWAY"] == "outbox"
    assert cfg["REDIS_URL"] == "memory://"
    assert cfg["REGISTRATION_REVIEW"] is False


def test_the_config_file_overrides_the_defaults(monkeypatch, tmp_path, instance):
    path = write_toml(tmp_path, 'sms_code_ttl = 120\nlogin_max_failures = 7\ncaptcha = "off"\n'
                               'registration_review = true\nissuer = "https://idp.example.cn/"\n')
    monkeypatch.setenv("IDP_CONFIG", str(path))
    cfg = load(instance)
    assert cfg["SMS_CODE_TTL"] == 120
    assert cfg["LOGIN_MAX_FAILURES"] == 7
    assert cfg["CAPTCHA"] == "off"
    assert cfg["REGISTRATION_REVIEW"] is True
    assert cfg["ISSUER"] == "https://idp.example.cn"
    assert cfg["SMS_RESEND_SECONDS"] == 60  # not in the file: default


def test_the_environment_overrides_the_config_file(monkeypatch, tmp_path, instance):
    path = write_toml(tmp_path, 'sms_code_ttl = 120\nlogin_max_failures = 7\ndatabase_url = "sqlite:///file.db"\n')
    monkeypatch.setenv("IDP_CONFIG", str(path))
    monkeypatch.setenv("IDP_SMS_CODE_TTL", "60")
    monkeypatch.setenv("IDP_DATABASE_URL", "sqlite:///env.db")
    cfg = load(instance)
    assert cfg["SMS_CODE_TTL"] == 60  # environment > file
    assert cfg["DATABASE_URL"] == "sqlite:///env.db"
    assert cfg["LOGIN_MAX_FAILURES"] == 7  # file > default
    assert cfg["SMS_MAX_PER_PHONE_PER_DAY"] == 10  # default


def test_the_environment_overrides_the_defaults(monkeypatch, instance):
    monkeypatch.setenv("IDP_SMS_MAX_PER_PHONE_PER_DAY", "3")
    monkeypatch.setenv("IDP_REGISTRATION_REVIEW", "on")
    monkeypatch.setenv("IDP_CAPTCHA", "OFF")
    monkeypatch.setenv("IDP_SMS_HTTP_TIMEOUT", "0.5")
    cfg = load(instance)
    assert cfg["SMS_MAX_PER_PHONE_PER_DAY"] == 3
    assert cfg["REGISTRATION_REVIEW"] is True
    assert cfg["CAPTCHA"] == "off"
    assert cfg["SMS_HTTP_TIMEOUT"] == 0.5


def test_the_instance_dir_can_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IDP_INSTANCE_DIR", str(tmp_path / "from-env"))
    cfg = load_settings()
    assert cfg["INSTANCE_DIR"] == str(tmp_path / "from-env")
    assert cfg["DATABASE_URL"] == f"sqlite:///{tmp_path / 'from-env' / 'idp.db'}"
    assert cfg["PII_KEYRING"] == str(tmp_path / "from-env" / "pii-keyring.json")


def test_explicit_overrides_win_over_everything(monkeypatch, tmp_path, instance):
    monkeypatch.setenv("IDP_CONFIG", str(write_toml(tmp_path, "sms_code_ttl = 120\n")))
    monkeypatch.setenv("IDP_SMS_CODE_TTL", "60")
    assert load(instance, SMS_CODE_TTL=30)["SMS_CODE_TTL"] == 30


def test_config_file_keys_are_case_insensitive(monkeypatch, tmp_path, instance):
    monkeypatch.setenv("IDP_CONFIG", str(write_toml(tmp_path, "SMS_RESEND_SECONDS = 90\n")))
    assert load(instance)["SMS_RESEND_SECONDS"] == 90


# --- derived values --------------------------------------------------------------------------


def test_the_default_issuer_is_the_loopback_address_on_the_default_port(instance):
    cfg = load(instance)
    assert cfg["PORT"] == 5000
    assert cfg["ISSUER"] == "http://127.0.0.1:5000"
    assert cfg["DATABASE_URL"] == f"sqlite:///{instance / 'idp.db'}"


def test_port_overrides_the_port_and_the_default_issuer(monkeypatch, instance):
    monkeypatch.setenv("PORT", "8080")
    cfg = load(instance)
    assert cfg["PORT"] == 8080
    assert cfg["ISSUER"] == "http://127.0.0.1:8080"


def test_an_explicit_issuer_is_kept_whatever_the_port(monkeypatch, instance):
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("IDP_ISSUER", "https://login.example.cn/")
    cfg = load(instance)
    assert cfg["ISSUER"] == "https://login.example.cn"  # exactly as in discovery: no trailing slash


def test_cookies_are_secure_for_an_https_issuer(monkeypatch, instance):
    monkeypatch.setenv("IDP_ISSUER", "https://login.example.cn")
    assert load(instance)["SECURE_COOKIES"] is True


def test_cookies_are_not_secure_for_a_plain_http_loopback_issuer(instance):
    assert load(instance)["SECURE_COOKIES"] is False


def test_cookies_are_always_secure_in_production(monkeypatch, instance):
    for name, value in SAFE_PRODUCTION.items():
        monkeypatch.setenv(name, value)
    assert load(instance)["SECURE_COOKIES"] is True


def test_a_development_secret_key_is_generated_once_into_the_instance_dir(instance):
    first = load(instance)["SECRET_KEY"]
    assert len(first) >= 32
    assert (instance / "secret_key").read_text().strip() == first
    assert (instance / "secret_key").stat().st_mode & 0o077 == 0
    assert load(instance)["SECRET_KEY"] == first


# --- production refusals ---------------------------------------------------------------------


def test_a_safe_production_configuration_loads(monkeypatch, instance):
    for name, value in SAFE_PRODUCTION.items():
        monkeypatch.setenv(name, value)
    cfg = load(instance)
    assert cfg["ENV"] == "production"
    assert not (instance / "secret_key").exists()


@pytest.mark.parametrize("variable, value", [
    ("IDP_CAPTCHA", "off"),
    ("IDP_ISSUER", "http://login.example.cn"),
    ("IDP_DATABASE_URL", "sqlite:///instance/idp.db"),
    ("IDP_SMS_GATEWAY", "outbox"),
    ("IDP_SECRET_KEY", None),
], ids=["captcha off", "http issuer", "SQLite", "outbox SMS", "no secret key"])
def test_production_refuses_unsafe_settings(monkeypatch, instance, variable, value):
    for name, safe in SAFE_PRODUCTION.items():
        monkeypatch.setenv(name, safe)
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError):
        load(instance)


def test_production_refuses_the_default_issuer_and_database(monkeypatch, instance):
    monkeypatch.setenv("IDP_ENV", "production")
    monkeypatch.setenv("IDP_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("IDP_SMS_GATEWAY", "http")
    with pytest.raises(ConfigurationError):
        load(instance)


def test_production_refusals_also_apply_to_the_config_file(monkeypatch, tmp_path, instance):
    for name, safe in SAFE_PRODUCTION.items():
        if name != "IDP_CAPTCHA":
            monkeypatch.setenv(name, safe)
    monkeypatch.setenv("IDP_CONFIG", str(write_toml(tmp_path, 'captcha = "off"\n')))
    with pytest.raises(ConfigurationError, match="IDP_CAPTCHA"):
        load(instance)


def test_an_unknown_environment_name_is_refused(monkeypatch, instance):
    monkeypatch.setenv("IDP_ENV", "staging")
    with pytest.raises(ConfigurationError, match="IDP_ENV"):
        load(instance)


# --- malformed values ------------------------------------------------------------------------


@pytest.mark.parametrize("variable, value", [
    ("IDP_CAPTCHA", "maybe"),
    ("PORT", "eighty"),
    ("IDP_SMS_CODE_TTL", "5min"),
    ("IDP_SMS_HTTP_TIMEOUT", "soon"),
    ("IDP_LOGIN_MAX_FAILURES", "5.5"),
    ("IDP_REGISTRATION_REVIEW", "maybe"),
    ("IDP_SERVER", "uwsgi"),
    ("IDP_ACCESS_LOG", "maybe"),
])
def test_a_malformed_value_gives_a_configuration_error_naming_the_variable(monkeypatch, instance, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        load(instance)
    assert variable in str(error.value)


def test_a_malformed_value_in_the_config_file_names_the_setting(monkeypatch, tmp_path, instance):
    monkeypatch.setenv("IDP_CONFIG", str(write_toml(tmp_path, 'captcha = "maybe"\n')))
    with pytest.raises(ConfigurationError, match="CAPTCHA"):
        load(instance)


def test_toml_booleans_are_accepted_for_on_off_settings(monkeypatch, tmp_path, instance):
    monkeypatch.setenv("IDP_CONFIG", str(write_toml(tmp_path, "captcha = false\n")))
    assert load(instance)["CAPTCHA"] == "off"


# --- the HTTP server of `idp serve` ----------------------------------------------------------


def test_idp_serve_runs_granian_without_an_access_log_by_default(instance):
    cfg = load(instance)
    assert cfg["SERVER"] == "granian"
    assert cfg["ACCESS_LOG"] is False
    assert cfg["THREADS"] == 4


def test_gunicorn_can_be_chosen_and_the_access_log_turned_on(monkeypatch, tmp_path, instance):
    monkeypatch.setenv("IDP_SERVER", " Gunicorn ")
    monkeypatch.setenv("IDP_ACCESS_LOG", "on")
    cfg = load(instance)
    assert cfg["SERVER"] == "gunicorn" and cfg["ACCESS_LOG"] is True
    monkeypatch.delenv("IDP_SERVER")
    monkeypatch.setenv("IDP_CONFIG", str(write_toml(tmp_path, 'server = "gunicorn"\naccess_log = false\n')))
    monkeypatch.delenv("IDP_ACCESS_LOG")
    cfg = load(instance)
    assert cfg["SERVER"] == "gunicorn" and cfg["ACCESS_LOG"] is False


def test_an_unknown_server_is_refused_with_the_choices(monkeypatch, instance):
    monkeypatch.setenv("IDP_SERVER", "uwsgi")
    with pytest.raises(ConfigurationError, match="IDP_SERVER: expected 'granian' or 'gunicorn', got 'uwsgi'"):
        load(instance)


def test_argon2id_parameters_default_to_owasps_recommendation(instance):
    cfg = load(instance)
    assert (cfg["ARGON2_MEMORY_KIB"], cfg["ARGON2_TIME_COST"], cfg["ARGON2_PARALLELISM"]) == (19456, 2, 1)


def test_argon2id_parameters_are_configuration_and_new_hashes_use_them(monkeypatch, tmp_path):
    from idp import create_app
    from idp.extensions import services

    monkeypatch.setenv("IDP_ARGON2_MEMORY_KIB", "2048")
    monkeypatch.setenv("IDP_ARGON2_TIME_COST", "3")
    monkeypatch.setenv("IDP_ARGON2_PARALLELISM", "2")
    app = create_app({"INSTANCE_DIR": str(tmp_path / "instance"), "DATABASE_URL": f"sqlite:///{tmp_path}/idp.db"})
    with app.app_context():
        assert services().passwords.hash("Correct-horse-9").startswith("$argon2id$v=19$m=2048,t=3,p=2$")


@pytest.mark.parametrize("name", ["PURGE_RETENTION", "PURGE_JOBS_RETENTION", "PURGE_INTERVAL"])
def test_a_negative_purge_setting_is_refused(monkeypatch, instance, name):
    monkeypatch.setenv(f"IDP_{name}", "-1")
    with pytest.raises(ConfigurationError, match=name):
        load(instance)
