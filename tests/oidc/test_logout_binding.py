"""RP-initiated logout is bound to the user (RP-Initiated Logout 1.0 §2, §3, §6): a logout
request that does not prove the signed-in user's own relying party sent it gets the
confirmation page, ends nothing until the user confirms, and redirects only to an address the
hint's client registered, exactly."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest

from idp.extensions import db
from idp.models.oauth import SsoSession
from tests.conftest import audit_events, make_account
from tests.oidc.conftest import csrf_from, form_action, html, location, query_of, reason_of, set_client

POST_LOGOUT = "https://rp.example/signed-out"
OTHER_OUT = "https://other.example/out"


def end_session_url(**params) -> str:
    return "/end-session?" + urlencode({k: v for k, v in params.items() if v is not None})


@pytest.fixture
def client_app(make_client):
    return make_client(trusted=True, post_logout_redirect_uris=[POST_LOGOUT])


@pytest.fixture
def victim(app, new_browser, client_app):
    """李四, signed in through the client in their own browser."""
    make_account("natural", "li_si", name="李四", phone="13900139000")
    browser = new_browser()
    tokens = browser.sign_in(*client_app, login_name="li_si")
    return browser, tokens


@pytest.fixture
def attacker_hint(rp, person, client_app):
    """A valid ID token of 张三 (the attacker's own account) for the same client."""
    return rp.sign_in(*client_app)["id_token"]


def assert_signed_in_and_session_open(browser, tokens) -> None:
    assert browser.get("/center/profile").status_code == 200
    db.session.expire_all()
    row = db.session.execute(db.select(SsoSession).filter_by(sid=tokens["claims"]["sid"])).scalar_one()
    assert row.ended_at is None


def assert_confirmation_page(response, reason: str) -> str:
    assert response.status_code == 200 and "Location" not in response.headers
    assert reason_of(response) == reason
    page = html(response)
    assert 'name="logout"' in page and 'value="yes"' in page
    return page


def test_another_users_id_token_hint_gets_the_confirmation_page_and_ends_nothing(victim, attacker_hint, client_app):
    browser, tokens = victim
    response = browser.get(end_session_url(id_token_hint=attacker_hint, post_logout_redirect_uri=POST_LOGOUT,
                                           state="forged"))
    assert_confirmation_page(response, "logout_hint_of_another_user")
    assert_signed_in_and_session_open(browser, tokens)
    refused = [e for e in audit_events("request_refused") if (e.details or {}).get("reason") ==
               "logout_hint_of_another_user"]
    assert len(refused) == 1 and refused[0].details["client_id"] == client_app[0]


def test_after_confirming_a_foreign_hint_the_user_goes_only_to_the_hint_clients_registered_address(
        victim, attacker_hint):
    browser, tokens = victim
    page = html(browser.get(end_session_url(id_token_hint=attacker_hint, post_logout_redirect_uri=POST_LOGOUT,
                                            state="s1")))
    confirmed = browser.browser.post(form_action(page, 'name="logout"'),
                                     data={"csrf_token": csrf_from(page), "logout": "yes"})
    assert confirmed.status_code == 302 and location(confirmed).startswith(POST_LOGOUT + "?")
    assert query_of(location(confirmed)) == {"state": "s1"}
    assert browser.get("/center/profile").status_code == 302


def test_a_foreign_hint_with_an_unregistered_address_never_redirects_even_after_confirmation(victim, attacker_hint):
    browser, tokens = victim
    for uri in ("https://evil.example/", POST_LOGOUT + "/x", OTHER_OUT):
        response = browser.get(end_session_url(id_token_hint=attacker_hint, post_logout_redirect_uri=uri))
        assert_confirmation_page(response, "logout_hint_of_another_user")
    page = html(response)
    confirmed = browser.browser.post(form_action(page, 'name="logout"'),
                                     data={"csrf_token": csrf_from(page), "logout": "yes"})
    assert confirmed.status_code == 200 and reason_of(confirmed) == "logged_out"
    assert "Location" not in confirmed.headers


def test_an_address_registered_by_another_client_is_not_used_with_the_users_own_hint(victim, make_client):
    browser, tokens = victim
    make_client(trusted=True, post_logout_redirect_uris=[OTHER_OUT])
    response = browser.get(end_session_url(id_token_hint=tokens["id_token"], post_logout_redirect_uri=OTHER_OUT))
    assert "other.example" not in location(response)


def test_without_a_session_a_hint_redirects_only_to_its_own_clients_registered_address(app, new_browser,
                                                                                      attacker_hint, make_client):
    stranger = new_browser()  # no session at all
    make_client(trusted=True, post_logout_redirect_uris=[OTHER_OUT])
    for uri in (OTHER_OUT, "https://evil.example/out", POST_LOGOUT + "#x"):
        response = stranger.get(end_session_url(id_token_hint=attacker_hint, post_logout_redirect_uri=uri, state="s"))
        assert response.status_code == 200 and "Location" not in response.headers, uri
        assert reason_of(response) == "logged_out"
    response = stranger.get(end_session_url(id_token_hint=attacker_hint, post_logout_redirect_uri=POST_LOGOUT))
    assert response.status_code == 302 and location(response) == POST_LOGOUT


def test_without_a_session_or_a_hint_no_address_is_redirected_to(new_browser, client_app):
    stranger = new_browser()
    response = stranger.get(end_session_url(client_id=client_app[0], post_logout_redirect_uri=POST_LOGOUT, state="s"))
    assert response.status_code == 200 and "Location" not in response.headers


def test_a_hint_of_a_disabled_client_gets_the_confirmation_page_and_no_redirect(victim, client_app):
    browser, tokens = victim
    set_client(client_app[0], enabled=False)
    response = browser.get(end_session_url(id_token_hint=tokens["id_token"], post_logout_redirect_uri=POST_LOGOUT))
    page = assert_confirmation_page(response, "logout_confirm")
    assert_signed_in_and_session_open(browser, tokens)
    confirmed = browser.browser.post(form_action(page, 'name="logout"'),
                                     data={"csrf_token": csrf_from(page), "logout": "yes"})
    assert "Location" not in confirmed.headers and reason_of(confirmed) == "logged_out"


def test_a_client_id_contradicting_the_hints_audience_is_refused(victim, make_client):
    browser, tokens = victim
    other, _ = make_client(trusted=True, post_logout_redirect_uris=[OTHER_OUT])
    response = browser.get(end_session_url(id_token_hint=tokens["id_token"], client_id=other,
                                           post_logout_redirect_uri=OTHER_OUT))
    assert response.status_code == 400 and "Location" not in response.headers
    assert_signed_in_and_session_open(browser, tokens)


def test_an_expired_hint_from_another_session_of_the_same_user_asks_for_confirmation(
        app, clock, new_browser, victim, client_app):
    """§2 allows expired hints, but an old token from elsewhere proves little: only one from
    this very session logs out at once (tests/oidc/test_rp_initiated_logout.py)."""
    browser, tokens = victim
    elsewhere = new_browser().sign_in(*client_app, login_name="li_si", prompt="login")
    clock.advance(app.config["ID_TOKEN_TTL"] + 60)
    response = browser.get(end_session_url(id_token_hint=elsewhere["id_token"], post_logout_redirect_uri=POST_LOGOUT))
    assert_confirmation_page(response, "logout_confirm")
    assert_signed_in_and_session_open(browser, tokens)


def test_an_unexpired_hint_of_the_users_own_client_logs_out_at_once(victim):
    """The legitimate case stays one step: §2 lets the OP skip the question when the RP proves
    it is the user's."""
    browser, tokens = victim
    response = browser.get(end_session_url(id_token_hint=tokens["id_token"], post_logout_redirect_uri=POST_LOGOUT,
                                           state="ok"))
    assert response.status_code == 302 and query_of(location(response)) == {"state": "ok"}
    assert urlsplit(location(response)).netloc == "rp.example"


def test_state_is_never_reflected_unescaped_on_the_confirmation_page(victim, attacker_hint):
    browser, _ = victim
    payload = '"><script>alert(1)</script>'
    response = browser.get(end_session_url(id_token_hint=attacker_hint, post_logout_redirect_uri=POST_LOGOUT,
                                           state=payload))
    assert "<script>alert(1)" not in html(response)
