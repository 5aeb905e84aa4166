"""The sign-in as data at the authorization endpoint: prompt=none hears what is missing as the
error OIDC Core §3.1.2.6 names; the interaction resumes the request stored for it (never the
browser's copy), once, and not after it expired; the authentication record is the source of
the sign-in's claims in the ID token, the JWT access token, introspection and userinfo, and a
refresh keeps the record of the sign-in the grant came from."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from idp.extensions import db
from idp.login import interaction
from idp.login.record import ACR_PASSWORD, Authentication
from idp.models.oauth import AuthorizationCode, RefreshToken, SsoSession
from tests.conftest import PASSWORD
from tests.oidc.conftest import (REDIRECT_URI, basic_auth, csrf_from, form_action, html, is_login_page,
                                 location, query_of, set_client)
from tests.oidc.test_authorization_request import assert_error_redirect


@pytest.fixture
def trusted(make_client):
    return make_client(trusted=True)


def _codes() -> int:
    return db.session.query(AuthorizationCode).count()


# --- prompt=none: the client hears which prompt is missing -------------------------------------


def _no_consent(rp, client_id, person):
    set_client(client_id, trusted=False)


def _legal_only(rp, client_id, person):
    set_client(client_id, allowed_account_types=["legal"])


def _forced_password_change(rp, client_id, person):
    person.must_change_password = True
    db.session.commit()


def _verified_only(rp, client_id, person):
    person.verification_status = "pending"
    db.session.commit()
    set_client(client_id, require_verified=True)


@pytest.mark.parametrize("arrange, params, error", [
    (None, {"max_age": "0"}, "login_required"),
    (_legal_only, {}, "login_required"),
    (_forced_password_change, {}, "interaction_required"),
    (_verified_only, {}, "interaction_required"),
    (_no_consent, {}, "consent_required"),
], ids=["max_age", "account_type_not_allowed", "required_actions", "verification_required", "scopes_missing"])
def test_prompt_none_answers_the_error_of_the_missing_prompt_and_issues_nothing(
        rp, trusted, person, clock, arrange, params, error):
    client_id, _ = trusted
    rp.login()
    clock.advance(5)
    if arrange:
        arrange(rp, client_id, person)
    before = _codes()
    response = rp.get(rp.authorize_url(client_id, prompt="none", state="quiet", **params))
    assert_error_redirect(response, error, "quiet")
    assert _codes() == before


def test_prompt_none_without_a_session_answers_login_required(rp, trusted, person):
    client_id, _ = trusted
    assert_error_redirect(rp.get(rp.authorize_url(client_id, prompt="none", state="s")), "login_required", "s")
    assert _codes() == 0
    assert "interactions" not in rp.session()  # nothing stored for an interaction that cannot happen


# --- the interaction resumes the stored request ------------------------------------------------


def _login_page_url(rp, client_id, **params) -> str:
    response = rp.get(rp.authorize_url(client_id, **params))
    assert response.status_code == 302 and "/login?" in location(response)
    return location(response)


def _sign_in_at(rp, url: str):
    page = rp.get(url)
    assert is_login_page(page)
    text = html(page)
    return rp.browser.post(form_action(text, 'name="password"'), data={
        "csrf_token": csrf_from(text), "account_type": "natural", "login_name": "zhang_san",
        "password": PASSWORD, "captcha": ""})


def _with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts.path + "?" + urlencode(query)


def test_the_authorization_request_is_stored_for_the_sign_in_not_carried_by_the_browser(rp, trusted, person):
    client_id, _ = trusted
    login_url = _login_page_url(rp, client_id, state="original", scope="openid profile")
    interaction_id = query_of(login_url)["interaction"]
    stored = rp.session()["interactions"][interaction_id]["request"]
    assert ["state", "original"] in stored["params"] and ["scope", "openid profile"] in stored["params"]


def test_a_tampered_copy_of_the_request_on_the_login_page_changes_nothing(rp, trusted, make_client, person):
    client_id, secret = trusted
    other_id, _ = make_client(trusted=True, redirect_uris=["https://evil.example/cb"])
    login_url = _login_page_url(rp, client_id, state="original")
    forged = "/authorize?" + urlencode({"response_type": "code", "client_id": other_id, "scope": "openid",
                                        "redirect_uri": "https://evil.example/cb", "state": "forged"})
    response = _sign_in_at(rp, _with_query(login_url, next=forged))
    assert response.status_code == 302 and location(response).startswith(REDIRECT_URI + "?")
    params = query_of(location(response))
    assert params["state"] == "original" and params["code"]
    assert rp.redeem(client_id, secret, params["code"]).status_code == 200
    assert db.session.query(AuthorizationCode).filter_by(client_id=other_id).count() == 0


def test_a_stored_request_is_answered_once(rp, trusted, person):
    client_id, _ = trusted
    login_url = _login_page_url(rp, client_id, state="once")
    interaction_id = query_of(login_url)["interaction"]
    first = _sign_in_at(rp, login_url)
    assert query_of(location(first))["state"] == "once"
    assert interaction_id not in rp.session().get("interactions", {})
    before = _codes()
    # The same interaction id again: nothing stored answers it; the browser goes to its own
    # ``next`` (a plain request to the endpoint, validated afresh) — no code from the old copy.
    again = _sign_in_at(rp, _with_query(login_url, next="/center/profile"))
    assert again.status_code == 302 and location(again).endswith("/center/profile")
    assert _codes() == before


def test_a_stored_request_expires_with_the_clock(rp, trusted, person, clock):
    client_id, _ = trusted
    login_url = _login_page_url(rp, client_id, state="late")
    page = rp.get(login_url)
    clock.advance(interaction.TTL + 1)
    text = html(page)
    response = rp.browser.post(form_action(text, 'name="password"'), data={
        "csrf_token": csrf_from(text), "account_type": "natural", "login_name": "zhang_san",
        "password": PASSWORD, "captcha": ""})
    assert response.status_code == 302, html(response)[:3000]
    assert not location(response).startswith(REDIRECT_URI)  # no code from the expired copy
    assert urlsplit(location(response)).path == "/authorize"  # the browser asks again itself
    assert _codes() == 0


def test_a_stored_request_of_another_browser_is_not_found(rp, new_browser, trusted, person):
    client_id, _ = trusted
    login_url = _login_page_url(rp, client_id, state="mine")
    thief = new_browser()
    response = _sign_in_at(thief, _with_query(login_url, next="/center/profile"))
    assert location(response).endswith("/center/profile")
    assert _codes() == 0


def test_the_login_module_never_builds_a_request_to_the_endpoint():
    """The earlier login re-ran the endpoint through a synthetic WSGI environ."""
    import inspect

    from idp.login import flow, interaction as stored, views

    for module in (views, flow, stored):
        source = inspect.getsource(module)
        assert "environ" not in source and "request_class" not in source


# --- the authentication record is the source of the sign-in's claims -----------------------------


SIGN_IN_CLAIMS = ("sub", "account_type", "sid", "auth_time", "acr", "amr")


def _introspect(rp, client_id, secret, token):
    response = rp.browser.post("/introspect", data={"token": token}, headers=basic_auth(client_id, secret))
    assert response.status_code == 200
    return response.get_json()


def test_every_token_says_of_the_sign_in_what_its_record_says(rp, trusted, person, clock, verify_jwt):
    client_id, secret = trusted
    signed_in_at = int(clock.time())
    tokens = rp.sign_in(client_id, secret, scope="openid profile offline_access")
    sid = rp.session()["sid"]
    expected = {"sub": person.sub, "account_type": "natural", "sid": sid, "auth_time": signed_in_at,
                "acr": ACR_PASSWORD, "amr": ["pwd"]}

    record = db.session.execute(db.select(SsoSession.authentication).filter_by(sid=sid)).scalar_one()
    assert "acr" not in record  # stored without what is derived (bench/PROFILE.md round 7)
    assert {k: Authentication.from_json(record).claims()[k] for k in SIGN_IN_CLAIMS} == expected
    assert {k: tokens["claims"][k] for k in SIGN_IN_CLAIMS} == expected  # the ID token (PyJWT)
    access = verify_jwt(tokens["access_token"], client_id, typ="at+jwt")
    assert {k: access[k] for k in SIGN_IN_CLAIMS} == expected
    introspected = _introspect(rp, client_id, secret, tokens["access_token"])
    assert {k: introspected[k] for k in SIGN_IN_CLAIMS} == expected
    of_refresh = _introspect(rp, client_id, secret, tokens["refresh_token"])
    assert {k: of_refresh[k] for k in SIGN_IN_CLAIMS} == expected
    userinfo = rp.userinfo(tokens["access_token"]).get_json()
    assert (userinfo["sub"], userinfo["account_type"]) == (person.sub, "natural")


def test_the_code_and_the_refresh_token_carry_the_record_whole(rp, trusted, person):
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret, scope="openid offline_access")
    code = db.session.execute(db.select(AuthorizationCode)).scalar_one()
    family = db.session.execute(db.select(RefreshToken)).scalar_one()
    assert code.authentication == family.authentication
    assert code.authentication["sid"] == rp.session()["sid"] == tokens["claims"]["sid"]
    assert Authentication.from_json(code.authentication).represents is None  # until delegation
    # Stored without what is derived or empty: acr comes from amr, no represents until delegation.
    assert set(code.authentication) == {"sub", "account_type", "sid", "auth_time", "amr"}


def test_a_refresh_keeps_the_record_of_the_original_sign_in(rp, trusted, person, clock, verify_jwt):
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret, scope="openid offline_access")
    first = verify_jwt(tokens["access_token"], client_id, typ="at+jwt")
    clock.advance(600)
    rp.login()  # a new sign-in in the same browser does not change the grant's
    response = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert response.status_code == 200
    refreshed = verify_jwt(response.get_json()["access_token"], client_id, typ="at+jwt")
    assert {k: refreshed[k] for k in SIGN_IN_CLAIMS} == {k: first[k] for k in SIGN_IN_CLAIMS}
    assert refreshed["iat"] == first["iat"] + 600
    rows = db.session.execute(db.select(RefreshToken.authentication)).scalars().all()
    assert len(rows) == 2 and rows[0] == rows[1]


# --- the hot paths cost the same number of statements -----------------------------------------


@pytest.fixture
def statements(app):
    """The SQL statements executed while the list is being filled."""
    from sqlalchemy import event

    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", note)
    yield seen
    event.remove(db.engine, "before_cursor_execute", note)


def test_a_code_exchange_and_a_refresh_cost_the_statements_they_cost_before(rp, trusted, person, statements):
    """The record travels in the row the spending statement returns (one UPDATE … RETURNING)
    and in the refresh token's INSERT: no statement more than before it existed."""
    client_id, secret = trusted
    rp.sign_in(client_id, secret, scope="openid")  # the signing keys, loaded once per process
    flow = rp.authorize(client_id, scope="openid offline_access")
    statements.clear()
    response = rp.redeem(client_id, secret, flow.code)
    assert response.status_code == 200
    exchange = list(statements)
    statements.clear()
    assert rp.refresh(client_id, secret, response.get_json()["refresh_token"]).status_code == 200
    refresh = list(statements)
    assert exchange == EXCHANGE_STATEMENTS, exchange
    assert refresh == REFRESH_STATEMENTS, refresh


EXCHANGE_STATEMENTS = ["UPDATE", "INSERT"]
REFRESH_STATEMENTS = ["UPDATE", "INSERT"]


def test_a_password_change_forced_after_the_sign_in_runs_before_the_next_code_then_resumes(
        rp, trusted, person):
    """``required_actions``: staff forced a change while the user was signed in; the next
    authorization request sends the browser to sign in and change it, then answers the stored
    request at once."""
    client_id, secret = trusted
    rp.login()
    _forced_password_change(rp, client_id, person)
    login_url = _login_page_url(rp, client_id, state="after-change")
    response = _sign_in_at(rp, login_url)
    assert location(response).endswith("/login/update-password")
    assert _codes() == 0
    page = html(rp.get("/login/update-password"))
    response = rp.browser.post("/login/update-password", data={
        "csrf_token": csrf_from(page), "password": "Brand-new-9pass", "password_confirm": "Brand-new-9pass"})
    assert response.status_code == 302 and location(response).startswith(REDIRECT_URI + "?")
    params = query_of(location(response))
    assert params["state"] == "after-change"
    assert rp.redeem(client_id, secret, params["code"]).status_code == 200
