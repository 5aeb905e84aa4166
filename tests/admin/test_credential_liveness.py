"""A disabled, staff-locked or deleted account, and a disabled or deleted client, stop working
everywhere at once: every access token however it was issued (code exchange with and without a
refresh token, refresh, client credentials) is refused at userinfo and introspects inactive,
refresh and code exchange are refused, the SSO session yields no code, and the relying parties
get a back-channel logout (delivered to a real HTTP server). The console's buttons and the
operators' commands (``idp users …``) do the same. A lockout from wrong passwords ends nothing.
"""

from __future__ import annotations

import base64
import json
import os

import pytest

from idp import create_app
from idp.admin import user_service
from idp.cli import main as idp_cli
from idp.extensions import db, services
from idp.models.accounts import ACTIVE, DISABLED, Account
from idp.models.oauth import RefreshToken, SsoSession
from tests.admin.conftest import form_token
from tests.conftest import PASSWORD, login, make_account, reason_of
from tests.oidc.conftest import basic_auth, bearer, is_login_page, location, query_of
from tests.oidc.test_backchannel_logout import EVENT, receiver  # noqa: F401 (the relying parties' endpoint)

WRONG = "Wr0ng!pass"


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    settings["JOBS_INLINE"] = True  # back-channel logouts delivered within the request
    return settings


@pytest.fixture
def person(app):
    return make_account("natural", "zhang_san", name="张三", email="zhangsan@example.cn")


@pytest.fixture
def admin(console):
    return console("superadmin")


@pytest.fixture
def systems(make_client, receiver):
    """项目申报 (refresh tokens), 成果登记 (codes only: no refresh token), and a resource
    server that introspects."""
    with_refresh = make_client(name="项目申报", trusted=True, backchannel_logout_uri=receiver.url("/a"),
                               grant_types=["authorization_code", "refresh_token", "client_credentials"])
    code_only = make_client(name="成果登记", trusted=True, backchannel_logout_uri=receiver.url("/b"),
                            grant_types=["authorization_code"])
    resource_server = make_client(name="资源服务", grant_types=["client_credentials"])
    return with_refresh, code_only, resource_server


@pytest.fixture
def make_client(app):
    from idp.clients import ClientSpec, create
    from tests.oidc.conftest import ALL_SCOPES, REDIRECT_URI

    def make(**spec):
        spec.setdefault("redirect_uris", [REDIRECT_URI])
        spec.setdefault("scopes", list(ALL_SCOPES))
        client, secret = create(ClientSpec(**spec))
        return client.client_id, secret

    return make


# --- helpers -------------------------------------------------------------------------------

def text(response) -> str:
    return response.get_data(as_text=True)


def act(console, account: Account, action: str, **data):
    """A staff action from the account's console page, confirmed."""
    token = form_token(text(console.get(f"/admin/users/{account.sub}")))
    response = console.post(f"/admin/users/{account.sub}/{action}",
                            data={"csrf_token": token, "confirm": "y", **data})
    assert response.status_code == 302, text(response)[:2000]
    return response


def run_cli(app, *args):
    """The operators' command, run on this very provider (its database and store)."""
    result = app.test_cli_runner().invoke(idp_cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def introspect(rp, resource_server, token: str) -> dict:
    client_id, secret = resource_server
    response = rp.browser.post("/introspect", data={"token": token}, headers=basic_auth(client_id, secret))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def refused_at_userinfo(rp, token: str) -> bool:
    response = rp.userinfo(token)
    return (response.status_code == 401 and response.get_json()["error"] == "invalid_token"
            and 'error="invalid_token"' in response.headers["WWW-Authenticate"])


def client_credentials(rp, client) -> object:
    client_id, secret = client
    return rp.browser.post("/token", data={"grant_type": "client_credentials", "scope": "openid"},
                           headers=basic_auth(client_id, secret))


def logout_claims(token: str) -> dict:
    header, payload = (json.loads(base64.urlsafe_b64decode(part + "==")) for part in token.split(".")[:2])
    assert header["typ"] == "logout+jwt"
    return payload


def everything_of_one_sign_in(rp, systems) -> dict:
    """The tokens of one sign-in: a code exchange with a refresh token, a token obtained by
    refresh, a code exchange without a refresh token (single sign-on: no second password)."""
    (a, a_secret), (b, b_secret), _ = systems
    first = rp.sign_in(a, a_secret, scope="openid profile")
    assert "refresh_token" in first
    refreshed = rp.refresh(a, a_secret, first["refresh_token"]).get_json()
    assert "access_token" in refreshed, refreshed
    second = rp.sign_in(b, b_secret, scope="openid profile")
    assert "refresh_token" not in second and "login" not in second["flow"].pages
    return {"sid": first["claims"]["sid"], "refresh_token": refreshed["refresh_token"],
            "access_tokens": [first["access_token"], refreshed["access_token"], second["access_token"]]}


def assert_everything_dead(rp, systems, receiver, person, held) -> None:
    (a, a_secret), (b, _), resource_server = systems
    for token in held["access_tokens"]:
        assert refused_at_userinfo(rp, token)
        assert introspect(rp, resource_server, token) == {"active": False}
    assert introspect(rp, resource_server, held["refresh_token"]) == {"active": False}
    refused = rp.refresh(a, a_secret, held["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    silent = rp.get(rp.authorize_url(a, prompt="none"))
    assert silent.status_code == 302 and query_of(location(silent))["error"] == "login_required"
    interactive = rp.follow(rp.get(rp.authorize_url(a)), stop_at_login=True)
    assert is_login_page(interactive)
    for path, client_id in (("/a", a), ("/b", b)):
        delivered = receiver.tokens(path)
        assert len(delivered) == 1, receiver.delivered
        claims = logout_claims(delivered[0])
        assert (claims["sub"], claims["sid"], claims["aud"]) == (person.sub, held["sid"], client_id)
        assert EVENT in claims["events"]
    db.session.expire_all()
    assert db.session.execute(db.select(SsoSession).filter_by(sid=held["sid"])).scalar_one().ended_at is not None
    assert all(row.revoked_at is not None for row in db.session.execute(
        db.select(RefreshToken).filter_by(account_id=person.id)).scalars())


def assert_all_alive(rp, systems, held) -> None:
    _, _, resource_server = systems
    for token in held["access_tokens"]:
        assert rp.userinfo(token).status_code == 200
        assert introspect(rp, resource_server, token)["active"] is True


def sign_in_again(app, clock, login_name="zhang_san", password=PASSWORD):
    clock.advance(1)  # a new second: what was issued in the second of the cut-off stays cut off
    return login(app, app.test_client(), login_name, password, captcha="")


# --- accounts -------------------------------------------------------------------------------

ENDINGS = {
    "console_disable": lambda app, admin, person: act(admin, person, "disable"),
    "console_lock": lambda app, admin, person: act(admin, person, "lock", minutes="60"),
    "cli_disable": lambda app, admin, person: run_cli(app, "users", "disable", "zhang_san"),
    "cli_lock": lambda app, admin, person: run_cli(app, "users", "lock", "zhang_san", "--minutes", "60"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_credential_of_a_disabled_or_staff_locked_account_stops_working_at_once(
        app, rp, admin, systems, receiver, person, ending):
    held = everything_of_one_sign_in(rp, systems)
    assert_all_alive(rp, systems, held)
    ENDINGS[ending](app, admin, person)
    assert_everything_dead(rp, systems, receiver, person, held)


def test_a_code_issued_before_the_account_was_disabled_cannot_be_exchanged(app, rp, admin, systems, person):
    (a, a_secret), _, _ = systems
    flow = rp.authorize(a)
    act(admin, person, "disable")
    refused = rp.redeem(a, a_secret, flow.code)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    assert db.session.execute(db.select(RefreshToken)).first() is None


def test_a_code_issued_before_a_staff_lock_cannot_be_exchanged(app, rp, admin, systems, person, clock):
    (a, a_secret), _, _ = systems
    flow = rp.authorize(a)
    clock.advance(0.5)
    act(admin, person, "lock", minutes="10")
    refused = rp.redeem(a, a_secret, flow.code)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"


def test_cli_disable_and_the_console_button_have_the_same_effects(app, admin, person):
    run_cli(app, "users", "disable", "zhang_san")
    db.session.expire_all()
    assert db.session.get(Account, person.id).status == DISABLED
    assert reason_of(login(app, app.test_client(), "zhang_san", PASSWORD, captcha="")) == "account_disabled"
    refused = app.test_cli_runner().invoke(idp_cli, ["users", "disable", "zhang_san"])
    assert refused.exit_code != 0 and "not_active" in refused.output
    from tests.admin.test_users import staff_actions

    assert [e["action"] for e in staff_actions("zhang_san")] == ["account_disabled"]


def test_enabling_restores_sign_in_but_not_the_old_tokens(app, rp, admin, systems, receiver, person, clock):
    held = everything_of_one_sign_in(rp, systems)
    run_cli(app, "users", "disable", "zhang_san")
    run_cli(app, "users", "enable", "zhang_san")
    db.session.expire_all()
    assert db.session.get(Account, person.id).status == ACTIVE
    assert sign_in_again(app, clock).status_code == 302
    assert_everything_dead(rp, systems, receiver, person, held)
    (a, a_secret), _, resource_server = systems
    fresh = rp.sign_in(a, a_secret, scope="openid")
    assert rp.userinfo(fresh["access_token"]).status_code == 200
    assert introspect(rp, resource_server, fresh["access_token"])["active"] is True


def test_unlocking_restores_sign_in_but_not_the_old_tokens(app, rp, admin, systems, receiver, person, clock):
    held = everything_of_one_sign_in(rp, systems)
    run_cli(app, "users", "lock", "zhang_san", "--minutes", "5")
    assert reason_of(login(app, app.test_client(), "zhang_san", PASSWORD, captcha="")) == "account_locked"
    run_cli(app, "users", "unlock", "zhang_san")
    assert sign_in_again(app, clock).status_code == 302
    assert_everything_dead(rp, systems, receiver, person, held)


def test_a_lock_from_the_cli_lasts_its_minutes_on_the_providers_clock(app, person, clock):
    run_cli(app, "users", "lock", "zhang_san", "--minutes", "5")
    clock.advance(299)
    assert reason_of(login(app, app.test_client(), "zhang_san", PASSWORD, captcha="")) == "account_locked"
    clock.advance(2)
    assert login(app, app.test_client(), "zhang_san", PASSWORD, captcha="").status_code == 302


@pytest.mark.parametrize("minutes", ["0", "43201", "-1"])
def test_a_cli_lock_needs_a_sensible_duration_and_changes_nothing(app, person, minutes):
    result = app.test_cli_runner().invoke(idp_cli, ["users", "lock", "zhang_san", "--minutes", minutes])
    assert result.exit_code != 0 and "invalid_minutes" in result.output
    assert user_service.locked_until(person) is None


def test_the_cli_names_an_unknown_login_and_changes_nothing(app, person):
    result = app.test_cli_runner().invoke(idp_cli, ["users", "disable", "nobody_here"])
    assert result.exit_code != 0 and "no account" in result.output
    db.session.expire_all()
    assert db.session.get(Account, person.id).status == ACTIVE


def test_a_lockout_from_wrong_passwords_ends_no_session_and_no_token(app, rp, systems, receiver, person):
    """Anyone can type wrong passwords for someone else's login name: that must not sign the
    victim out anywhere."""
    held = everything_of_one_sign_in(rp, systems)
    for _ in range(5):
        login(app, app.test_client(), "zhang_san", WRONG, captcha="")
    assert reason_of(login(app, app.test_client(), "zhang_san", PASSWORD, captcha="")) == "account_locked"
    assert_all_alive(rp, systems, held)
    (a, a_secret), _, _ = systems
    assert rp.refresh(a, a_secret, held["refresh_token"]).status_code == 200
    silent = rp.get(rp.authorize_url(a, prompt="none"))
    assert "code" in query_of(location(silent))
    assert receiver.delivered == {}


def test_a_deleted_accounts_tokens_are_refused_everywhere(app, rp, systems, person):
    """The provider has no deletion of accounts (staff disable them); should a row go, its
    tokens die with it."""
    held = everything_of_one_sign_in(rp, systems)
    row = db.session.get(Account, person.id)
    db.session.execute(db.delete(RefreshToken))
    db.session.execute(db.delete(SsoSession))
    from idp.models.oauth import AuthorizationCode, Consent

    db.session.execute(db.delete(AuthorizationCode))
    db.session.execute(db.delete(Consent))
    db.session.delete(row)
    db.session.commit()
    _, _, resource_server = systems
    for token in held["access_tokens"]:
        assert refused_at_userinfo(rp, token)
        assert introspect(rp, resource_server, token) == {"active": False}


# --- clients --------------------------------------------------------------------------------

def test_every_credential_of_a_disabled_client_stops_working_and_enabling_revives_none(
        app, rp, admin, systems, person, clock):
    (a, a_secret), _, resource_server = systems
    first = rp.sign_in(a, a_secret, scope="openid profile")
    refreshed = rp.refresh(a, a_secret, first["refresh_token"]).get_json()
    machine = client_credentials(rp, (a, a_secret)).get_json()["access_token"]
    pending = rp.authorize(a).code
    tokens = [first["access_token"], refreshed["access_token"], machine]
    console = admin  # a superadmin may manage clients too
    page = console.get(f"/admin/clients/{a}")
    assert console.post(f"/admin/clients/{a}/disable",
                        data={"csrf_token": form_token(text(page))}).status_code == 302
    for token in tokens:
        assert introspect(rp, resource_server, token) == {"active": False}
    for token in tokens[:2]:
        assert refused_at_userinfo(rp, token)
    for refused in (rp.refresh(a, a_secret, refreshed["refresh_token"]), client_credentials(rp, (a, a_secret)),
                    rp.redeem(a, a_secret, pending)):
        assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    at_authorize = rp.get(rp.authorize_url(a))
    assert at_authorize.status_code == 400 and "Location" not in at_authorize.headers
    # Its own introspection and revocation are refused too.
    own = rp.browser.post("/introspect", data={"token": machine}, headers=basic_auth(a, a_secret))
    assert own.status_code == 401 and own.get_json()["error"] == "invalid_client"
    revoke = rp.browser.post("/revoke", data={"token": machine}, headers=basic_auth(a, a_secret))
    assert revoke.status_code == 401 and revoke.get_json()["error"] == "invalid_client"

    page = console.get(f"/admin/clients/{a}")
    assert console.post(f"/admin/clients/{a}/enable",
                        data={"csrf_token": form_token(text(page))}).status_code == 302
    clock.advance(1)
    for token in tokens:
        assert introspect(rp, resource_server, token) == {"active": False}
    again = rp.refresh(a, a_secret, refreshed["refresh_token"])
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    fresh = client_credentials(rp, (a, a_secret)).get_json()["access_token"]
    assert introspect(rp, resource_server, fresh)["active"] is True


def test_a_deleted_clients_client_credentials_tokens_introspect_inactive(app, rp, systems):
    from idp import clients

    (a, a_secret), _, resource_server = systems
    machine = client_credentials(rp, (a, a_secret)).get_json()["access_token"]
    assert introspect(rp, resource_server, machine)["active"] is True
    clients.delete(clients.find(a), "test")
    assert introspect(rp, resource_server, machine) == {"active": False}


# --- two workers sharing Redis --------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("IDP_TEST_REDIS_URL"), reason="two workers share Redis only")
def test_a_disable_in_one_worker_holds_at_once_in_another_that_had_everything_cached(
        app, settings, clock, rp, admin, systems, person):
    """Two application instances on one database and one Redis, as two workers: the second has
    the client, the token's verification and the account's userinfo entry in its caches when
    the first disables the account, then the client."""
    (a, a_secret), _, resource_server = systems
    tokens = rp.sign_in(a, a_secret, scope="openid profile")
    machine = client_credentials(rp, (a, a_secret)).get_json()["access_token"]
    other = create_app(settings, clock=clock)
    other.config["TESTING"] = True
    worker = other.test_client()
    with other.app_context():
        assert services().revocations.wait_until_listening(5)

    def introspected(token):
        return worker.post("/introspect", data={"token": token},
                           headers=basic_auth(*resource_server)).get_json()

    assert worker.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    assert introspected(tokens["access_token"])["active"] is True
    assert worker.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic_auth(a, a_secret)).status_code == 200
    act(admin, person, "disable")
    assert _eventually(lambda: introspected(tokens["access_token"]) == {"active": False})
    assert worker.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    page = admin.get(f"/admin/clients/{a}")
    admin.post(f"/admin/clients/{a}/disable", data={"csrf_token": form_token(text(page))})
    # Within the client cache's generation check (1 s) had the cut-off not reached it: the
    # frozen clock does not move, so only the cut-off can make this hold.
    assert _eventually(lambda: introspected(machine) == {"active": False})
    refused = worker.post("/token", data={"grant_type": "client_credentials"}, headers=basic_auth(a, a_secret))
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def _eventually(check, seconds: float = 2.0) -> bool:
    """Pub/sub delivery between two instances takes a moment of real time (not the clock's)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# --- idp users verify -----------------------------------------------------------------------

def last_json(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.strip()][-1])


def test_cli_verify_runs_the_configured_verifier_on_the_current_data(app):
    """The local verifier (check digits) on an account whose data was never verified: the same
    answer 保存 in the user centre would apply."""
    account = make_account("natural", "li_si", name="李四", identity_region="mainland",
                           document_type="resident_id", document_number="11010519491231002X")
    assert account.verification_status == "unverified"
    result = run_cli(app, "users", "verify", "li_si", "--json")
    assert last_json(result.output) == {"verification_status": "verified_auto"}
    db.session.expire_all()
    assert db.session.get(Account, account.id).verification_status == "verified_auto"


def test_cli_verify_leaves_an_account_with_incomplete_data_unverified(app, person):
    result = run_cli(app, "users", "verify", "zhang_san", "--json")
    assert last_json(result.output) == {"verification_status": "unverified"}


@pytest.fixture
def verifier_down(settings, request):
    settings.update(VERIFIER="http", VERIFIER_URL="http://127.0.0.1:9/verify",  # nothing listens there
                    VERIFIER_SECRET="s" * 32, VERIFIER_RETRIES=0)
    return request.getfixturevalue("app")


def test_cli_verify_with_the_verifier_down_changes_nothing(verifier_down):
    app = verifier_down
    make_account("natural", "li_si", name="李四", identity_region="mainland",
                           document_type="resident_id", document_number="11010519491231002X")
    result = run_cli(app, "users", "verify", "li_si", "--json")
    assert last_json(result.output) == {"verification_status": "unverified"}


@pytest.mark.parametrize("ending", ["console_disable", "console_lock"])
def test_the_user_centre_session_ends_with_the_account(app, rp, admin, systems, person, ending):
    (a, a_secret), _, _ = systems
    rp.sign_in(a, a_secret)
    assert rp.get("/center/profile").status_code == 200
    ENDINGS[ending](app, admin, person)
    left = rp.get("/center/profile")
    assert left.status_code == 302 and "/login" in location(left)
