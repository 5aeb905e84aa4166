"""Basic OP: the authorization request and response (OIDC Core §3.1.2, RFC 6749 §4.1,
RFC 9207 ``iss``, OAuth 2.0 Form Post Response Mode): state, prompt, max_age, login_hint,
ui_locales, id_token_hint, acr_values, response_mode, request objects."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.oidc.conftest import (ISSUER, PASSWORD, REDIRECT_URI, csrf_from, form_action, html, is_consent_page,
                                 is_login_page, location, query_of)

ACR = "urn:cn:most:idp:acr:password"


@pytest.fixture
def trusted(make_client):
    return make_client(trusted=True)


@pytest.fixture
def untrusted(make_client):
    return make_client()


def assert_error_redirect(response, error: str, state: str | None = None) -> dict:
    """An error sent back to the registered redirect URI, with state and iss (RFC 9207)."""
    assert response.status_code in (302, 303), (response.status_code, html(response)[:1500])
    target = location(response)
    assert target.startswith(REDIRECT_URI + "?"), target
    params = query_of(target)
    assert params["error"] == error, params
    assert params["iss"] == ISSUER
    if state is not None:
        assert params["state"] == state
    assert "code" not in params
    return params


# --- state and iss ---------------------------------------------------------------------------


def test_authorization_response_echoes_state_and_carries_iss(rp, trusted, person):
    client_id, _ = trusted
    flow = rp.authorize(client_id, state="xyz-123_~.")
    assert location(flow.response).startswith(REDIRECT_URI + "?")
    assert flow.params["state"] == "xyz-123_~."
    assert flow.params["iss"] == ISSUER
    assert flow.params["code"]


def test_authorization_response_without_state_has_none(rp, trusted, person):
    client_id, _ = trusted
    flow = rp.authorize(client_id, state=None)
    assert "state" not in flow.params and flow.params["iss"] == ISSUER


def test_error_redirects_carry_state_and_iss(rp, untrusted, person):
    client_id, _ = untrusted
    flow = rp.authorize(client_id, state="s-deny", consent="deny")
    assert_error_redirect(flow.response, "access_denied", "s-deny")


# --- prompt ----------------------------------------------------------------------------------


def test_prompt_none_without_a_session_answers_login_required(rp, trusted, person):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, prompt="none", state="s-none"))
    assert_error_redirect(response, "login_required", "s-none")


def test_prompt_none_with_a_session_issues_a_code_without_any_page(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, prompt="none", state="s1"))
    assert response.status_code == 302
    params = query_of(location(response))
    assert params["code"] and params["state"] == "s1" and params["iss"] == ISSUER


def test_prompt_none_with_a_session_but_no_consent_answers_consent_required(rp, untrusted, person):
    client_id, _ = untrusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, prompt="none", state="s-c"))
    assert_error_redirect(response, "consent_required", "s-c")


def test_prompt_none_combined_with_another_value_is_invalid(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, prompt="none login", state="s"))
    assert_error_redirect(response, "invalid_request", "s")


def test_prompt_login_forces_a_new_login_and_a_new_auth_time(rp, trusted, person, clock):
    client_id, secret = trusted
    first = rp.sign_in(client_id, secret)
    assert first["flow"].pages == ["login"]
    clock.advance(30)
    second = rp.sign_in(client_id, secret, prompt="login")
    assert second["flow"].pages == ["login"]
    assert second["claims"]["auth_time"] >= first["claims"]["auth_time"] + 30
    third = rp.sign_in(client_id, secret)
    assert third["flow"].pages == []  # the session is reused afterwards


def test_prompt_login_with_a_consent_page_still_ends_with_a_code(rp, untrusted, person, clock):
    client_id, secret = untrusted
    rp.sign_in(client_id, secret, scope="openid profile")
    clock.advance(10)
    tokens = rp.sign_in(client_id, secret, scope="openid profile email", prompt="login")
    assert tokens["flow"].pages == ["login", "consent"]
    assert tokens["claims"]["auth_time"] == pytest.approx(clock.time(), abs=1)


# --- max_age ---------------------------------------------------------------------------------


def test_max_age_zero_forces_a_login_without_looping(rp, trusted, person, clock):
    client_id, secret = trusted
    first = rp.sign_in(client_id, secret)
    clock.advance(5)
    second = rp.sign_in(client_id, secret, max_age="0")
    assert second["flow"].pages == ["login"]
    assert second["claims"]["auth_time"] == pytest.approx(clock.time(), abs=1)
    assert second["claims"]["auth_time"] > first["claims"]["auth_time"]


def test_small_max_age_with_an_old_session_forces_a_login(rp, trusted, person, clock):
    client_id, secret = trusted
    rp.login()
    clock.advance(120)
    tokens = rp.sign_in(client_id, secret, max_age="60")
    assert tokens["flow"].pages == ["login"]
    assert "auth_time" in tokens["claims"]
    assert clock.time() - tokens["claims"]["auth_time"] <= 60


def test_max_age_larger_than_the_session_age_reuses_the_session(rp, trusted, person, clock):
    client_id, secret = trusted
    rp.login()
    login_time = clock.time()
    clock.advance(120)
    tokens = rp.sign_in(client_id, secret, max_age="3600")
    assert tokens["flow"].pages == []
    assert tokens["claims"]["auth_time"] == pytest.approx(login_time, abs=1)


def test_max_age_exceeded_with_prompt_none_answers_login_required(rp, trusted, person, clock):
    client_id, _ = trusted
    rp.login()
    clock.advance(120)
    response = rp.get(rp.authorize_url(client_id, max_age="60", prompt="none", state="s"))
    assert_error_redirect(response, "login_required", "s")


def test_malformed_max_age_is_an_invalid_request(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, max_age="soon", state="s"))
    assert_error_redirect(response, "invalid_request", "s")


# --- login_hint, ui_locales ------------------------------------------------------------------


def login_page_for(rp, url):
    response = rp.follow(rp.get(url), stop_at_login=True)
    assert is_login_page(response), html(response)[:1500]
    return html(response)


def login_name_value(page: str) -> str | None:
    field = re.search(r'<input[^>]*name="login_name"[^>]*>', page)
    assert field
    value = re.search(r'value="([^"]*)"', field.group(0))
    return value.group(1) if value else None


def active_tab(page: str) -> str:
    match = re.search(r'data-tab="(\w+)" aria-selected="true"', page)
    assert match
    return match.group(1)


def test_login_hint_prefills_the_login_name(rp, trusted, person):
    client_id, _ = trusted
    page = login_page_for(rp, rp.authorize_url(client_id, login_hint="zhang_san"))
    assert login_name_value(page) == "zhang_san"
    assert active_tab(page) == "natural"


def test_a_uscc_login_hint_selects_the_legal_tab(rp, trusted, unit):
    client_id, secret = trusted
    page = login_page_for(rp, rp.authorize_url(client_id, login_hint="91350100M000100Y43"))
    assert login_name_value(page) == "91350100M000100Y43"
    assert active_tab(page) == "legal"


def test_the_login_page_without_a_hint_is_empty(rp, trusted, person):
    client_id, _ = trusted
    page = login_page_for(rp, rp.authorize_url(client_id))
    assert not login_name_value(page)


def test_ui_locales_en_renders_the_login_page_in_english(rp, trusted, person):
    client_id, _ = trusted
    page = login_page_for(rp, rp.authorize_url(client_id, ui_locales="en-US zh-CN"))
    assert '<html lang="en"' in page
    assert "Unified user login" in page and "统一用户登录" not in page


def test_the_login_page_is_chinese_by_default(rp, trusted, person):
    client_id, _ = trusted
    page = login_page_for(rp, rp.authorize_url(client_id))
    assert '<html lang="zh-CN"' in page and "统一用户登录" in page


# --- id_token_hint ---------------------------------------------------------------------------


@pytest.fixture
def other_users_id_token(new_browser, trusted, app):
    from tests.conftest import make_account

    make_account("natural", "li_si", name="李四", phone="13900139000")
    client_id, secret = trusted
    return new_browser().sign_in(client_id, secret, login_name="li_si")["id_token"]


def test_id_token_hint_of_the_signed_in_user_needs_no_new_login(rp, trusted, person):
    client_id, secret = trusted
    first = rp.sign_in(client_id, secret)
    again = rp.sign_in(client_id, secret, id_token_hint=first["id_token"])
    assert again["flow"].pages == []
    assert again["claims"]["sub"] == person.sub


def test_id_token_hint_naming_another_user_forces_a_login(rp, trusted, person, other_users_id_token):
    client_id, secret = trusted
    rp.login()
    response = rp.follow(rp.get(rp.authorize_url(client_id, id_token_hint=other_users_id_token)),
                         stop_at_login=True)
    assert is_login_page(response)


def test_id_token_hint_naming_another_user_with_prompt_none_answers_login_required(
        rp, trusted, person, other_users_id_token):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, id_token_hint=other_users_id_token, prompt="none",
                                       state="s-h"))
    assert_error_redirect(response, "login_required", "s-h")


def test_an_invalid_id_token_hint_is_an_invalid_request(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, id_token_hint="not.a.token", state="s"))
    assert_error_redirect(response, "invalid_request", "s")


def test_an_access_token_as_id_token_hint_is_an_invalid_request(rp, trusted, person):
    """Signed by the same keys, but ``typ`` at+jwt: not an ID token, whichever endpoint takes it."""
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret)
    response = rp.get(rp.authorize_url(client_id, id_token_hint=tokens["access_token"], state="s-at"))
    assert_error_redirect(response, "invalid_request", "s-at")


# --- acr_values ------------------------------------------------------------------------------


def test_acr_values_are_accepted_and_the_acr_is_reported(rp, trusted, person):
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret, acr_values=ACR)
    assert tokens["claims"]["acr"] == ACR


def test_unknown_acr_values_are_accepted_as_voluntary(rp, trusted, person):
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret, acr_values="urn:example:loa:3 " + ACR)
    assert tokens["claims"]["sub"] == person.sub


# --- response_mode ---------------------------------------------------------------------------


def test_response_mode_form_post_answers_with_a_self_posting_form(rp, trusted, person):
    client_id, secret = trusted
    flow = rp.authorize(client_id, response_mode="form_post", state="fp-state")
    response = flow.response
    assert response.status_code == 200
    assert "Location" not in response.headers
    page = html(response)
    form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page)
    assert form and form.group(1) == REDIRECT_URI
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert fields["state"] == "fp-state" and fields["iss"] == ISSUER and fields["code"]
    csp = response.headers["Content-Security-Policy"]
    assert re.search(r"form-action [^;]*https://rp\.example(?=[ ;]|$)", csp), csp
    assert response.headers.get("Cache-Control") == "no-store"
    token = rp.redeem(client_id, secret, fields["code"])
    assert token.status_code == 200


def test_response_mode_form_post_escapes_the_values_it_posts(rp, trusted, person):
    client_id, _ = trusted
    state = 'a"><script>alert(1)</script>'
    flow = rp.authorize(client_id, response_mode="form_post", state=state)
    page = html(flow.response)
    assert "<script>alert(1)" not in page
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    from html import unescape

    assert unescape(fields["state"]) == state


def test_response_mode_form_post_also_carries_errors(rp, untrusted, person):
    client_id, _ = untrusted
    flow = rp.authorize(client_id, response_mode="form_post", state="fp", consent="deny")
    assert flow.response.status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html(flow.response)))
    assert fields["error"] == "access_denied" and fields["state"] == "fp" and fields["iss"] == ISSUER


def test_response_mode_query_is_the_default_and_accepted(rp, trusted, person):
    client_id, _ = trusted
    flow = rp.authorize(client_id, response_mode="query")
    assert flow.params["code"]


@pytest.mark.parametrize("mode", ["fragment", "junk"])
def test_unsupported_response_modes_are_invalid_requests(rp, trusted, person, mode):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, response_mode=mode, state="rm"))
    assert_error_redirect(response, "invalid_request", "rm")


def test_unsupported_response_mode_is_refused_even_with_a_session(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, response_mode="fragment", state="rm"))
    assert_error_redirect(response, "invalid_request", "rm")


# --- request objects -------------------------------------------------------------------------


def test_request_parameter_is_not_supported(rp, trusted, person):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, request="eyJhbGciOiJub25lIn0.e30.", state="ro"))
    assert_error_redirect(response, "request_not_supported", "ro")


def test_request_uri_parameter_is_not_supported(rp, trusted, person):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, request_uri="https://rp.example/req.jwt", state="ru"))
    assert_error_redirect(response, "request_uri_not_supported", "ru")


def test_request_errors_are_reported_before_any_login_page(rp, trusted, person):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, request_uri="https://rp.example/r", state="s"))
    assert response.status_code == 302 and urlsplit(location(response)).netloc == "rp.example"
    assert not is_consent_page(response)


def test_authorization_endpoint_accepts_post(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    url = rp.authorize_url(client_id, state="post-state")
    params = query_of(url)
    response = rp.browser.post("/authorize", data=params)
    # A POSTed authorization request (OIDC Core §3.1.2.1) carries no CSRF token of ours; it
    # continues as the equivalent GET so the login and consent pages can return to it.
    assert response.status_code == 303, html(response)[:1500]
    assert query_of(location(response)) == params
    response = rp.browser.get(location(response))
    assert response.status_code == 302, html(response)[:1500]
    result = query_of(location(response))
    assert result["code"] and result["state"] == "post-state"


def test_a_posted_authorization_request_without_a_session_goes_through_login_and_consent(
        rp, untrusted, person):
    client_id, secret = untrusted
    params = query_of(rp.authorize_url(client_id, state="post-login", nonce="pn", scope="openid profile"))
    pages: list = []
    response = rp.follow(rp.browser.post("/authorize", data=params), pages=pages)
    assert pages == ["login", "consent"]
    assert response.status_code == 302 and location(response).startswith(REDIRECT_URI + "?")
    result = query_of(location(response))
    assert result["state"] == "post-login" and result["iss"] == ISSUER
    tokens = rp.redeem(client_id, secret, result["code"]).get_json()
    assert rp.verify_id_token(tokens["id_token"], client_id)["nonce"] == "pn"


def test_a_posted_authorization_request_with_errors_is_refused_like_a_get(rp, trusted, person):
    client_id, _ = trusted
    params = query_of(rp.authorize_url(client_id, request_uri="https://rp.example/r", state="pe"))
    response = rp.follow(rp.browser.post("/authorize", data=params))
    assert_error_redirect(response, "request_uri_not_supported", "pe")


# --- other checks of the Basic OP plan -------------------------------------------------------


def test_all_scopes_at_once_are_granted(rp, trusted, person):
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret, scope="openid profile email address phone")
    assert set(tokens["scope"].split()) == {"openid", "profile", "email", "address", "phone"}


def test_another_scope_order_succeeds(rp, trusted, person):
    client_id, secret = trusted
    tokens = rp.sign_in(client_id, secret, scope="email openid")
    assert tokens["claims"]["sub"] == person.sub
    assert rp.userinfo(tokens["access_token"]).get_json()["email"] == "zhangsan@example.cn"


@pytest.mark.parametrize("display", ["page", "popup", "touch", "wap"])
def test_display_values_are_accepted(rp, trusted, person, display):
    client_id, secret = trusted
    assert rp.sign_in(client_id, secret, display=display)["claims"]["sub"] == person.sub


def test_an_unknown_parameter_is_ignored(rp, trusted, person):
    client_id, secret = trusted
    assert rp.sign_in(client_id, secret, extra="foobar")["claims"]["sub"] == person.sub


def test_claims_locales_is_accepted(rp, trusted, person):
    client_id, secret = trusted
    assert rp.sign_in(client_id, secret, claims_locales="en zh-CN")["claims"]["sub"] == person.sub


def test_the_claims_parameter_is_accepted_though_not_supported(rp, trusted, person):
    client_id, secret = trusted
    claims = '{"userinfo": {"name": {"essential": true}}}'
    tokens = rp.sign_in(client_id, secret, scope="openid profile", claims=claims)
    assert rp.userinfo(tokens["access_token"]).get_json()["name"] == "张三"


def test_id_token_hint_with_prompt_none_for_the_signed_in_user_issues_a_code(rp, trusted, person):
    client_id, secret = trusted
    first = rp.sign_in(client_id, secret)
    response = rp.get(rp.authorize_url(client_id, prompt="none", id_token_hint=first["id_token"], state="h"))
    assert response.status_code == 302
    params = query_of(location(response))
    assert params["code"] and params["state"] == "h"
    tokens = rp.redeem(client_id, secret, params["code"]).get_json()
    assert tokens["id_token"]


def test_an_expired_id_token_hint_is_not_an_invalid_request(rp, trusted, person, clock, app):
    client_id, secret = trusted
    first = rp.sign_in(client_id, secret)
    clock.advance(app.config["ID_TOKEN_TTL"] + 10)
    response = rp.get(rp.authorize_url(client_id, prompt="none", id_token_hint=first["id_token"]))
    assert response.status_code == 302
    assert "code" in query_of(location(response)) or query_of(location(response))["error"] == "login_required"


def test_a_registered_redirect_uri_with_a_query_keeps_it(rp, make_client, person):
    with_query = "https://rp.example/callback?foo=bar"
    client_id, secret = make_client(trusted=True, redirect_uris=[with_query])
    flow = rp.authorize(client_id, redirect_uri=with_query, state="q")
    assert location(flow.response).startswith("https://rp.example/callback?")
    assert flow.params["foo"] == "bar" and flow.params["code"] and flow.params["state"] == "q"
    assert rp.redeem(client_id, secret, flow.code, redirect_uri=with_query).status_code == 200


def test_a_redirect_uri_with_a_different_query_is_refused(rp, make_client, person):
    client_id, _ = make_client(trusted=True, redirect_uris=["https://rp.example/callback?foo=bar"])
    response = rp.get(rp.authorize_url(client_id, redirect_uri="https://rp.example/callback?foo=zot"))
    assert response.status_code == 400 and "Location" not in response.headers


# --- the login answers the authorization request it was for ----------------------------------


def _sign_in_from(rp, response):
    """Follow ``response`` to the login page and sign in there; return the login POST's answer."""
    response = rp.follow(response, stop_at_login=True)
    assert is_login_page(response)
    page = html(response)
    return rp.browser.post(form_action(page, 'name="password"'), data={
        "csrf_token": csrf_from(page), "account_type": "natural", "login_name": "zhang_san",
        "password": PASSWORD, "captcha": ""})


def _login_for(rp, client_id, **params):
    """Open the authorization request and sign in; return the login POST's answer."""
    return _sign_in_from(rp, rp.get(rp.authorize_url(client_id, **params)))


def test_the_login_redirects_straight_to_the_client_with_the_code(rp, trusted, person):
    client_id, secret = trusted
    session_before = rp.session()
    response = _login_for(rp, client_id, state="direct")
    assert response.status_code == 302
    params = query_of(location(response))
    assert location(response).startswith(REDIRECT_URI + "?")
    assert params["state"] == "direct" and params["iss"] == ISSUER and params["code"]
    assert rp.redeem(client_id, secret, params["code"]).status_code == 200
    after = rp.session()
    assert after["account_id"] == person.id and after.get("sid")
    assert "fresh_login_for" not in after  # spent by the request it was for
    assert session_before.get("account_id") is None


def test_a_login_for_prompt_login_ends_with_the_code_not_another_login(rp, trusted, person):
    client_id, _ = trusted
    rp.login()
    response = _login_for(rp, client_id, prompt="login", state="again")
    assert location(response).startswith(REDIRECT_URI + "?")
    params = query_of(location(response))
    assert params["state"] == "again" and params["code"] and "error" not in params


def test_a_login_for_a_request_with_raw_utf8_in_its_query_answers_it(rp, trusted, person):
    """A browser may send 中 unencoded; the request is rebuilt from the login's copy of it."""
    client_id, secret = trusted
    query = urlsplit(rp.authorize_url(client_id, state=None)).query + "&state=中文"
    response = rp.browser.get("/authorize", environ_overrides={"QUERY_STRING": query.encode().decode("latin-1")})
    answer = _sign_in_from(rp, response)
    assert answer.status_code == 302 and location(answer).startswith(REDIRECT_URI + "?")
    params = query_of(location(answer))
    assert params["state"] == "中文"
    assert rp.redeem(client_id, secret, params["code"]).status_code == 200


def test_a_login_whose_request_needs_a_page_goes_back_to_the_request_by_its_url(rp, untrusted, person):
    client_id, secret = untrusted
    response = _login_for(rp, client_id, state="consent-next")
    assert response.status_code == 302
    target = urlsplit(location(response))
    assert target.path == "/authorize" and query_of(location(response))["state"] == "consent-next"
    flow = rp.follow(response)
    assert flow.status_code == 302 and query_of(location(flow))["state"] == "consent-next"
    assert rp.redeem(client_id, secret, query_of(location(flow))["code"]).status_code == 200


def test_a_login_for_a_form_post_request_goes_back_to_the_request_by_its_url(rp, trusted, person):
    client_id, _ = trusted
    response = _login_for(rp, client_id, response_mode="form_post")
    assert urlsplit(location(response)).path == "/authorize"
    page = rp.follow(response)
    assert page.status_code == 200 and 'name="code"' in html(page)


def test_a_login_without_an_authorization_request_goes_to_the_user_centre(rp, person):
    response = rp.login()
    assert urlsplit(location(response)).path == "/center/profile"


def test_the_sso_session_lists_each_system_signed_into_once(rp, make_client, person):
    from idp.extensions import db
    from idp.models.oauth import SsoSession

    first, _ = make_client(trusted=True)
    second, _ = make_client(trusted=True)
    assert location(_login_for(rp, first)).startswith(REDIRECT_URI)  # joined by the login itself
    for client_id in (second, first):
        assert rp.authorize(client_id).pages == []  # single sign-on: no page
    sid = rp.session()["sid"]
    row = db.session.execute(db.select(SsoSession).filter_by(sid=sid)).scalar_one()
    assert row.client_ids == [first, second]
