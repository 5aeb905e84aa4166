"""`idp clients create … --json` through the real console script (INTERFACES.md): the last
stdout line is the JSON; a client created this way works at once in a code flow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import g, request_started

from tests.conftest import CHEAP_ARGON2
from tests.oidc.conftest import ISSUER, REDIRECT_URI, RelyingParty, id_token_verifier, jwt_verifier, jwks_reader

IDP = str(Path(sys.executable).with_name("idp"))
if not Path(IDP).exists():  # pragma: no cover - the project's virtualenv
    IDP = "/work/main/.venv/bin/idp"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """An instance directory and a SQLite database migrated by `idp db upgrade`."""
    root = tmp_path_factory.mktemp("oidc-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_") and k != "PORT"}
    env.update(IDP_INSTANCE_DIR=str(root / "instance"), IDP_DATABASE_URL=f"sqlite:///{root / 'idp.db'}",
               IDP_ARGON2_MEMORY_KIB="1024", IDP_ARGON2_TIME_COST="1", PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([IDP, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return env


def idp(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([IDP, *args], env=env, capture_output=True, text=True, timeout=120)


def last_json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, (result.stdout, result.stderr)
    return json.loads(lines[-1])


def test_clients_create_json_prints_the_id_and_secret_as_the_last_line(instance):
    result = idp(instance, "clients", "create", "--name", "科技成果登记", "--redirect-uri", REDIRECT_URI, "--json")
    assert result.returncode == 0, result.stderr
    data = last_json(result)
    assert set(data) == {"client_id", "client_secret"}
    assert re.fullmatch(r"[A-Za-z0-9]{24}", data["client_id"]) and len(data["client_secret"]) >= 32
    assert data["client_secret"] not in result.stderr  # logs go to stderr, the secret only once to stdout


def test_clients_create_public_prints_no_secret(instance):
    result = idp(instance, "clients", "create", "--name", "移动端", "--redirect-uri", REDIRECT_URI,
                 "--public", "--json")
    assert result.returncode == 0, result.stderr
    data = last_json(result)
    assert data["client_id"] and "client_secret" not in data


@pytest.mark.parametrize(("uri", "reason"), [
    ("https://rp.example/*", "wildcard"),
    ("https://rp.example/callback#section", "fragment"),
    ("/callback", "invalid_uri"),
])
def test_clients_create_refuses_bad_redirect_uris_with_a_clear_message(instance, uri, reason):
    result = idp(instance, "clients", "create", "--name", f"bad {reason}", "--redirect-uri", uri, "--json")
    assert result.returncode != 0
    message = result.stderr + result.stdout
    assert "redirect_uri" in message and reason in message, message
    assert "client_secret" not in result.stdout
    assert "Traceback" not in message


def test_a_client_created_by_the_cli_works_at_once_in_a_code_flow(instance):
    result = idp(instance, "clients", "create", "--name", "项目管理", "--redirect-uri", REDIRECT_URI,
                 "--scope", "openid", "--scope", "profile", "--json")
    assert result.returncode == 0, result.stderr
    created = last_json(result)

    from idp import create_app
    from idp.extensions import db
    from tests.conftest import make_account

    app = create_app({"INSTANCE_DIR": instance["IDP_INSTANCE_DIR"], "DATABASE_URL": instance["IDP_DATABASE_URL"],
                      "CAPTCHA": "off", "ISSUER": ISSUER, **CHEAP_ARGON2})
    app.config["TESTING"] = True

    def fresh_g(sender, **extra):
        g._get_current_object().__dict__.clear()

    request_started.connect(fresh_g, app)
    with app.app_context():
        try:
            person = make_account("natural", "cli_user", name="赵六", phone="13600136000")
            verify = id_token_verifier(jwt_verifier(jwks_reader(app), app.extensions["idp.services"].clock.time))
            rp = RelyingParty(app, app.test_client(), verify)
            tokens = rp.sign_in(created["client_id"], created["client_secret"], login_name="cli_user",
                                scope="openid profile")
            assert tokens["flow"].pages == ["login", "consent"]  # not --trusted: consent is asked
            assert tokens["claims"]["sub"] == person.sub
            assert rp.userinfo(tokens["access_token"]).get_json()["preferred_username"] == "cli_user"
        finally:
            db.session.remove()
            db.engine.dispose()


def test_generated_client_ids_are_letters_and_digits_so_a_command_line_never_reads_one_as_an_option():
    """token_urlsafe ids began with "-" one time in 64, and `idp clients rotate-secret -c0…` failed."""
    from idp.clients import new_client_id
    ids = {new_client_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9]{24}", client_id) for client_id in ids)
