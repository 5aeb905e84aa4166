"""Authorization errors (RFC 6749 §3.1.2.4, §4.1.2.1; OIDC Core §3.1.2.6): never a redirect to
an unverified URI; errors about a valid client's request go back to it with state and iss."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.oidc.conftest import ISSUER, REDIRECT_URI, html, is_login_page, location, query_of, reason_of, set_client


@pytest.fixture
def trusted(make_client):
    return make_client(trusted=True)


def assert_error_page(response, error: str | None = None) -> None:
    """An HTML error page at the provider: 400, no Location header, no redirect anywhere."""
    assert response.status_code == 400, (response.status_code, response.headers.get("Location"))
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    if error:
        assert reason_of(response) == error, reason_of(response)


def assert_error_redirect(response, error: str, state: str | None = None) -> dict:
    assert response.status_code == 302, (response.status_code, html(response)[:1500])
    assert location(response).startswith(REDIRECT_URI + "?")
    params = query_of(location(response))
    assert params["error"] == error and params["iss"] == ISSUER and "code" not in params
    if state is not None:
        assert params["state"] == state
    return params


# --- never a redirect ------------------------------------------------------------------------


def test_unknown_client_id_gets_an_error_page(rp, person):
    assert_error_page(rp.get(rp.authorize_url("no-such-client")), "invalid_client")


def test_missing_client_id_gets_an_error_page(rp, person):
    assert_error_page(rp.get(rp.authorize_url(None)), "invalid_client")


def test_an_overlong_client_id_gets_an_error_page(rp):
    assert_error_page(rp.get(rp.authorize_url("c" * 5000)))


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/callback",
    "https://rp.example/callback/other",
    "https://rp.example/callback?x=1",
    "http://rp.example/callback",
], ids=["other-host", "other-path", "extra-query", "http-instead-of-https"])
def test_unregistered_redirect_uri_gets_an_error_page(rp, trusted, person, redirect_uri):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, redirect_uri=redirect_uri))
    assert_error_page(response)
    assert 'href="https://evil.example' not in html(response)


@pytest.mark.parametrize("redirect_uri", [
    "https://RP.example/callback", "https://rp.example/Callback", "HTTPS://rp.example/callback",
], ids=["host-case", "path-case", "scheme-case"])
def test_redirect_uri_differing_only_by_case_gets_an_error_page(rp, trusted, person, redirect_uri):
    client_id, _ = trusted
    assert_error_page(rp.get(rp.authorize_url(client_id, redirect_uri=redirect_uri)))


def test_redirect_uri_differing_by_a_trailing_slash_gets_an_error_page(rp, trusted, person):
    client_id, _ = trusted
    assert_error_page(rp.get(rp.authorize_url(client_id, redirect_uri=REDIRECT_URI + "/")))


@pytest.mark.parametrize("suffix", ["#frag", "#"])
def test_redirect_uri_with_a_fragment_gets_an_error_page(rp, trusted, person, suffix):
    client_id, _ = trusted
    assert_error_page(rp.get(rp.authorize_url(client_id, redirect_uri=REDIRECT_URI + suffix)))


def test_missing_redirect_uri_with_one_registered_uses_it(rp, trusted, person):
    client_id, _ = trusted
    flow = rp.authorize(client_id, redirect_uri=None)
    assert location(flow.response).startswith(REDIRECT_URI + "?") and flow.params["code"]


def test_missing_redirect_uri_with_several_registered_gets_an_error_page(rp, make_client, person):
    client_id, _ = make_client(trusted=True, redirect_uris=[REDIRECT_URI, "https://rp.example/other"])
    assert_error_page(rp.get(rp.authorize_url(client_id, redirect_uri=None)))


def test_error_pages_do_not_depend_on_a_session(rp, trusted, person):
    rp.login()
    client_id, _ = trusted
    assert_error_page(rp.get(rp.authorize_url(client_id, redirect_uri="https://evil.example/cb")))
    assert_error_page(rp.get(rp.authorize_url("no-such-client")))


def test_disabled_client_gets_an_error_page(rp, trusted, person):
    client_id, _ = trusted
    set_client(client_id, enabled=False)
    assert_error_page(rp.get(rp.authorize_url(client_id)))
    rp.login()
    assert_error_page(rp.get(rp.authorize_url(client_id)))


def test_disabled_client_cannot_redeem_a_code_issued_before(rp, trusted, person):
    client_id, secret = trusted
    flow = rp.authorize(client_id)
    set_client(client_id, enabled=False)
    response = rp.redeem(client_id, secret, flow.code)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


# --- errors redirected to a valid client -----------------------------------------------------


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "id_token token", "bogus"])
def test_unsupported_response_type_redirects_with_unsupported_response_type(rp, trusted, person, response_type):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, response_type=response_type, state="rt"))
    assert_error_redirect(response, "unsupported_response_type", "rt")


def test_missing_response_type_is_an_invalid_request(rp, trusted, person):
    client_id, _ = trusted
    response = rp.get(rp.authorize_url(client_id, response_type=None, state="rt"))
    params = assert_error_redirect(response, response_error(response))
    assert params["error"] in ("invalid_request", "unsupported_response_type")


def response_error(response) -> str:
    return query_of(location(response)).get("error", "")


@pytest.mark.parametrize("repeated", ["scope", "state", "nonce", "response_type"])
def test_repeated_parameters_are_an_invalid_request(rp, trusted, person, repeated):
    client_id, _ = trusted
    params = [("response_type", "code"), ("client_id", client_id), ("redirect_uri", REDIRECT_URI),
              ("scope", "openid"), ("state", "one"), ("nonce", "n1")]
    params.append((repeated, {"scope": "openid profile", "state": "two", "nonce": "n2",
                              "response_type": "code"}[repeated]))
    response = rp.get("/authorize?" + urlencode(params))
    if response.status_code == 302:
        assert response_error(response) == "invalid_request"
        assert location(response).startswith(REDIRECT_URI + "?")
    else:
        assert_error_page(response, "invalid_request")
    assert "code=" not in location(response)


def test_repeated_client_id_never_redirects(rp, trusted, person):
    client_id, _ = trusted
    params = [("response_type", "code"), ("client_id", client_id), ("client_id", client_id),
              ("redirect_uri", REDIRECT_URI), ("scope", "openid")]
    assert_error_page(rp.get("/authorize?" + urlencode(params)))


def test_repeated_parameters_are_refused_before_the_login_page(rp, trusted, person):
    client_id, _ = trusted
    url = rp.authorize_url(client_id) + "&scope=openid"
    response = rp.follow(rp.get(url), stop_at_login=True)
    assert not is_login_page(response)


@pytest.mark.parametrize("name", [
    "state", "nonce",
    "login_hint", "scope", "acr_values", "ui_locales"])
def test_oversized_parameters_get_a_proper_error_never_a_500(rp, trusted, person, name):
    client_id, _ = trusted
    rp.login()
    response = rp.get(rp.authorize_url(client_id, **{name: "x" * 10_240}))
    assert response.status_code < 500, response.status_code
    assert response.status_code in (200, 302, 400, 413, 414, 431)


def test_a_nonce_longer_than_255_characters_is_refused_with_invalid_request(rp, trusted, person):
    client_id, secret = trusted
    flow = rp.authorize(client_id, nonce="n" * 256, state="ln")
    assert flow.response.status_code == 302, flow.response.status_code
    assert flow.params["error"] == "invalid_request" and flow.params["state"] == "ln"


def test_a_10kb_state_gets_no_500_even_without_a_session(rp, trusted, person):
    client_id, _ = trusted
    response = rp.follow(rp.get(rp.authorize_url(client_id, state="s" * 10_240)))
    assert response.status_code < 500


def test_scope_without_openid_is_not_an_openid_request(rp, trusted, person):
    """OIDC Core §3.1.2.1: scope openid is required for an OpenID request; without it this
    provider answers an error or a plain OAuth code without an ID token — never a 500."""
    client_id, secret = trusted
    flow = rp.authorize(client_id, scope="profile")
    assert flow.response.status_code == 302
    if "code" in flow.params:
        tokens = rp.redeem(client_id, secret, flow.code).get_json()
        assert "id_token" not in tokens
    else:
        assert flow.params["error"] in ("invalid_scope", "invalid_request")


def test_unknown_scopes_are_ignored(rp, trusted, person):
    client_id, secret = trusted
    flow = rp.authorize(client_id, scope="openid unheard-of")
    tokens = rp.redeem(client_id, secret, flow.code).get_json()
    assert tokens["scope"] == "openid"


# --- account types ---------------------------------------------------------------------------


def test_a_legal_only_client_shows_a_natural_person_a_refusal_page_and_no_code(rp, make_client, person):
    client_id, _ = make_client(trusted=True, allowed_account_types=["legal"])
    flow = rp.authorize(client_id, state="at")
    assert flow.response.status_code == 403
    assert reason_of(flow.response) == "account_type_not_allowed"
    assert "Location" not in flow.response.headers
    assert "code=" not in html(flow.response)


def test_a_legal_only_client_opens_the_legal_tab(rp, make_client, unit):
    client_id, secret = make_client(trusted=True, allowed_account_types=["legal"])
    response = rp.follow(rp.get(rp.authorize_url(client_id)), stop_at_login=True)
    assert 'data-tab="legal" aria-selected="true"' in html(response)
    tokens = rp.sign_in(client_id, secret, login_name="fz_unit", account_type="legal")
    assert tokens["claims"]["account_type"] == "legal"


def test_a_natural_only_client_refuses_a_legal_account(rp, make_client, unit):
    client_id, _ = make_client(trusted=True, allowed_account_types=["natural"])
    flow = rp.authorize(client_id, login_name="fz_unit", account_type="legal")
    assert flow.response.status_code == 403
    assert reason_of(flow.response) == "account_type_not_allowed"


def test_a_refused_account_type_with_prompt_none_returns_an_error_to_the_client(rp, make_client, person):
    client_id, _ = make_client(trusted=True, allowed_account_types=["legal"])
    rp.login()
    response = rp.get(rp.authorize_url(client_id, prompt="none", state="pn"))
    assert response.status_code == 302, response.status_code
    params = assert_error_redirect(response, response_error(response), "pn")
    assert params["error"] in ("login_required", "interaction_required", "account_selection_required")
