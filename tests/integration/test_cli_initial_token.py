"""``idp clients initial-token [--expires-in SECONDS] --json`` (INTERFACES.md "CLI"): an initial
access token for RFC 7591 dynamic registration, printed once as the last stdout line, stored as
SHA-256, valid for one registration until it expires."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from idp.cli import main
from idp.extensions import db
from idp.models.clients import Client
from idp.models.staff import InitialAccessToken
from tests.admin.test_registration_api import metadata
from tests.integration.test_cli import cli, in_process, last_json, rows, template_db  # noqa: F401
from tests.oidc.conftest import bearer


def register(http, token: str, name: str = "高企认定（自助注册）"):
    return http.post("/connect/register", json=metadata(client_name=name), headers=bearer(token))


def issue(app, *args: str) -> str:
    result = app.test_cli_runner().invoke(main, ["clients", "initial-token", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["initial_access_token"]


def test_the_command_prints_the_token_as_the_last_json_line_and_stores_only_its_hash(cli):
    result = cli.run("clients", "initial-token", "--expires-in", "600", "--json")
    token = last_json(result)["initial_access_token"]
    assert list(last_json(result)) == ["initial_access_token"] and len(token) >= 40
    assert token not in result.stderr
    (stored,) = rows(cli.database, "SELECT token_hash, max_uses, uses, revoked, expires_at, created_by "
                                   "FROM initial_access_tokens")
    assert stored[:4] == (hashlib.sha256(token.encode()).hexdigest(), 1, 0, 0)
    assert stored[5] == "cli"
    expires = datetime.fromisoformat(stored[4]).replace(tzinfo=timezone.utc)
    assert abs(expires - datetime.now(timezone.utc) - timedelta(seconds=600)) < timedelta(seconds=60)
    (event,) = rows(cli.database, "SELECT actor, details FROM audit_events WHERE event = 'staff_action'")
    assert event[0] == "cli" and json.loads(event[1])["action"] == "initial_access_token_issued"

    app = in_process(cli.instance, cli.database)
    with app.app_context():
        http = app.test_client()
        first = register(http, token)
        assert first.status_code == 201, first.get_json()
        second = register(http, token, name="第二个系统")  # single use
        assert second.status_code == 401 and second.get_json()["error"] == "invalid_token"
        assert [c.name for c in db.session.execute(db.select(Client)).scalars()] == ["高企认定（自助注册）"]
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("value", ["0", "-5", "31536001", "soon"])
def test_an_expiry_out_of_range_is_refused_with_a_clear_message_and_nothing_is_issued(cli, value):
    result = cli.run("clients", "initial-token", "--expires-in", value, "--json", check=False)
    assert result.returncode == 2 and "--expires-in" in result.stderr
    assert "initial_access_token" not in result.stdout
    assert rows(cli.database, "SELECT COUNT(*) FROM initial_access_tokens") == [(0,)]


def test_the_token_expires_after_the_given_seconds(app, client, clock):
    token = issue(app, "--expires-in", "120")
    clock.advance(121)
    response = register(client, token)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert db.session.execute(db.select(Client.id)).first() is None
    assert db.session.execute(db.select(InitialAccessToken.uses)).scalar_one() == 0


def test_the_token_works_until_it_expires_and_defaults_to_one_day(app, client, clock):
    short = issue(app, "--expires-in", "120")
    default = issue(app)
    clock.advance(119)
    assert register(client, short).status_code == 201
    clock.advance(86400 - 119 - 2)
    assert register(client, default, name="第二个系统").status_code == 201
    assert register(client, default, name="第三个系统").status_code == 401  # used up
