"""Consent (OIDC Core §3.1.2.4): asked of untrusted clients, remembered per scope set,
asked again for new scopes and with prompt=consent, withdrawable under 我的授权应用."""

from __future__ import annotations

import re

import pytest

from idp.extensions import db
from idp.models.oauth import Consent
from tests.oidc.conftest import (ISSUER, REDIRECT_URI, csrf_from, form_action, html, is_consent_page, location,
                                 query_of, reason_of)


@pytest.fixture
def untrusted(make_client):
    return make_client(name="科研项目申报系统")


def consent_page(rp, client_id, **params):
    response = rp.follow(rp.get(rp.authorize_url(client_id, **params)), consent=None)
    assert is_consent_page(response), html(response)[:1500]
    return response


def test_an_untrusted_client_shows_the_consent_page_with_the_requested_scopes(rp, untrusted, person):
    client_id, _ = untrusted
    page = html(consent_page(rp, client_id, scope="openid profile phone"))
    assert set(re.findall(r'data-scope="([^"]+)"', page)) == {"openid", "profile", "phone"}
    assert re.search(r'<button[^>]*name="consent"[^>]*value="allow"', page)
    assert re.search(r'<button[^>]*name="consent"[^>]*value="deny"', page)
    assert "科研项目申报系统" in page


def test_the_consent_page_lists_only_scopes_the_client_may_have(rp, make_client, person):
    client_id, _ = make_client(scopes=["openid", "profile"])
    page = html(consent_page(rp, client_id, scope="openid profile phone"))
    assert set(re.findall(r'data-scope="([^"]+)"', page)) == {"openid", "profile"}


def test_denying_consent_redirects_with_access_denied(rp, untrusted, person):
    client_id, _ = untrusted
    flow = rp.authorize(client_id, consent="deny", state="den")
    params = query_of(location(flow.response))
    assert location(flow.response).startswith(REDIRECT_URI)
    assert params["error"] == "access_denied" and params["state"] == "den" and params["iss"] == ISSUER
    assert db.session.execute(db.select(Consent)).first() is None


def test_allowing_consent_is_remembered(rp, untrusted, person):
    client_id, secret = untrusted
    first = rp.sign_in(client_id, secret, scope="openid profile")
    assert first["flow"].pages == ["login", "consent"]
    second = rp.sign_in(client_id, secret, scope="openid profile")
    assert second["flow"].pages == []
    narrower = rp.sign_in(client_id, secret, scope="openid")
    assert narrower["flow"].pages == []


def test_a_new_scope_asks_again_for_consent(rp, untrusted, person):
    client_id, secret = untrusted
    rp.sign_in(client_id, secret, scope="openid profile")
    response = consent_page(rp, client_id, scope="openid profile email")
    assert "email" in re.findall(r'data-scope="([^"]+)"', html(response))
    again = rp.sign_in(client_id, secret, scope="openid profile email")
    assert again["flow"].pages == ["consent"]
    assert rp.sign_in(client_id, secret, scope="openid email")["flow"].pages == []


def test_prompt_consent_asks_again(rp, untrusted, person):
    client_id, secret = untrusted
    rp.sign_in(client_id, secret)
    tokens = rp.sign_in(client_id, secret, prompt="consent")
    assert tokens["flow"].pages == ["consent"]


def test_a_trusted_client_skips_the_consent_page(rp, make_client, person):
    client_id, secret = make_client(trusted=True)
    assert rp.sign_in(client_id, secret, scope="openid profile")["flow"].pages == ["login"]
    assert db.session.execute(db.select(Consent)).first() is None


def test_consent_of_one_user_does_not_cover_another(rp, new_browser, untrusted, person):
    from tests.conftest import make_account

    make_account("natural", "li_si", name="李四", phone="13900139000")
    client_id, secret = untrusted
    rp.sign_in(client_id, secret)
    other = new_browser().sign_in(client_id, secret, login_name="li_si")
    assert other["flow"].pages == ["login", "consent"]


def test_consent_needs_the_csrf_token(rp, untrusted, person):
    client_id, _ = untrusted
    page = html(consent_page(rp, client_id, state="cs"))
    action = form_action(page, 'name="consent"')
    for data in ({"consent": "allow"}, {"consent": "allow", "csrf_token": "forged"}):
        response = rp.browser.post(action, data=data)
        assert response.status_code == 400
        assert reason_of(response) == "csrf_failed"
        assert "code=" not in location(response)
    assert db.session.execute(db.select(Consent)).first() is None


def test_the_consent_form_posts_back_to_the_same_authorization_request(rp, untrusted, person):
    client_id, _ = untrusted
    url = rp.authorize_url(client_id, state="same", scope="openid profile")
    response = rp.follow(rp.get(url), consent=None)
    action = form_action(html(response), 'name="consent"')
    assert action.startswith("/authorize?")
    assert query_of(action) == query_of(url)


# --- 我的授权应用 ------------------------------------------------------------------------------


def test_center_apps_lists_the_consent_and_revoking_it_ends_the_clients_refresh_tokens(rp, untrusted, person):
    client_id, secret = untrusted
    tokens = rp.sign_in(client_id, secret, scope="openid profile")
    page = html(rp.get("/center/apps"))
    assert f'data-client="{client_id}"' in page
    action = form_action(page, f"/center/apps/{client_id}/revoke")
    response = rp.browser.post(action, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert f'data-client="{client_id}"' not in html(rp.get("/center/apps"))
    assert db.session.execute(db.select(Consent)).first() is None
    refreshed = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    # The next sign-in asks again.
    assert rp.sign_in(client_id, secret, scope="openid profile")["flow"].pages == ["consent"]


def test_revoking_one_consent_leaves_other_clients_alone(rp, make_client, person):
    first, first_secret = make_client()
    second, second_secret = make_client()
    rp.sign_in(first, first_secret)
    kept = rp.sign_in(second, second_secret)
    page = html(rp.get("/center/apps"))
    rp.browser.post(f"/center/apps/{first}/revoke", data={"csrf_token": csrf_from(page)})
    assert rp.refresh(second, second_secret, kept["refresh_token"]).status_code == 200


def test_revoking_consent_needs_the_csrf_token(rp, untrusted, person):
    client_id, secret = untrusted
    rp.sign_in(client_id, secret)
    response = rp.browser.post(f"/center/apps/{client_id}/revoke")
    assert response.status_code == 400 and reason_of(response) == "csrf_failed"
    assert db.session.execute(db.select(Consent)).first() is not None


def test_revoking_an_unknown_consent_is_not_found(rp, untrusted, person):
    rp.login()
    page = html(rp.get("/center/apps"))
    assert rp.browser.post("/center/apps/no-such/revoke", data={"csrf_token": csrf_from(page)}).status_code == 404


def test_center_apps_needs_a_sign_in(rp):
    response = rp.get("/center/apps")
    assert response.status_code == 302 and "/login" in location(response)
