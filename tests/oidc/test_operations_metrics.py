"""/metrics after real sign-ins and token requests, and who may read it (INTERFACES.md
"Operations")."""

from __future__ import annotations

import re

import pytest

from tests.oidc.conftest import csrf_from, html

METRICS_TOKEN = "m" * 40


@pytest.fixture
def settings(settings):
    settings["METRICS_TOKEN"] = METRICS_TOKEN
    return settings


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample of the exposition, 0 when absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def metrics(client, **kwargs) -> str:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_metrics_count_sign_ins_token_grants_and_requests_by_endpoint(rp, make_client, person, client):
    client_id, secret = make_client(trusted=True)
    tokens = rp.sign_in(client_id, secret, scope="openid profile")  # a sign-in and a code grant
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    # A replayed code and a wrong secret: refused, and counted so.
    assert rp.redeem(client_id, secret, tokens["flow"].code).status_code == 400
    assert rp.refresh(client_id, "wrong", tokens["refresh_token"]).status_code == 401
    rp.browser.post("/login", data={"login_name": "zhang_san", "password": "wrong"})
    rp.browser.get("/no-such-page")

    text = metrics(client)
    assert sample(text, "idp_logins_total", kind="user", outcome="success") == 1
    assert sample(text, "idp_token_requests_total", grant_type="authorization_code", outcome="success") == 1
    assert sample(text, "idp_token_requests_total", grant_type="refresh_token", outcome="success") == 1
    assert sample(text, "idp_token_requests_total", grant_type="authorization_code", outcome="refused",
                  error="invalid_grant") == 1
    assert sample(text, "idp_token_requests_total", grant_type="refresh_token", outcome="refused",
                  error="invalid_client") == 1
    assert sample(text, "idp_http_request_duration_seconds_count", endpoint="/token", status="200") == 2
    assert sample(text, "idp_http_request_duration_seconds_count", endpoint="/userinfo", status="200") == 1
    assert sample(text, "idp_http_request_duration_seconds_bucket", endpoint="/userinfo", status="200",
                  le="+Inf") == 1
    assert sample(text, "idp_http_request_duration_seconds_count", endpoint="/authorize", status="302") >= 1
    # A made-up path is one label value, never the path itself.
    assert sample(text, "idp_http_request_duration_seconds_count", endpoint="unmatched", status="404") == 1
    assert "no-such-page" not in text
    assert sample(text, "idp_jobs", state="pending") == 0
    # The probes and the scrape itself are not requests of the provider's users.
    assert 'endpoint="/metrics"' not in text


def test_a_failed_sign_in_is_counted_with_its_reason(rp, client, person):
    page = html(rp.browser.get("/login"))
    rp.browser.post("/login", data={"csrf_token": csrf_from(page), "account_type": "natural",
                                    "login_name": "zhang_san", "password": "Wrong-password1", "captcha": ""})
    text = metrics(client)
    assert sample(text, "idp_logins_total", kind="user", outcome="failure", reason="invalid_credentials") == 1
    assert sample(text, "idp_logins_total", kind="user", outcome="success") == 0


def test_a_client_chosen_grant_type_does_not_become_a_label(rp, make_client, client):
    client_id, secret = make_client(trusted=True)
    rp.token(client_id, secret, grant_type="x" * 300)
    text = metrics(client)
    assert sample(text, "idp_token_requests_total", grant_type="other", outcome="refused",
                  error="unsupported_grant_type") == 1
    assert "x" * 50 not in text


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.1"])
def test_metrics_answer_loopback_addresses(client, address):
    assert "idp_http_request_duration_seconds" in metrics(client, environ_base={"REMOTE_ADDR": address})


def test_metrics_answer_another_address_with_the_bearer_token(client):
    text = metrics(client, environ_base={"REMOTE_ADDR": "203.0.113.7"},
                   headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert "idp_logins" in text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Bearer {METRICS_TOKEN}x",
                                           f"bearer  {METRICS_TOKEN}", METRICS_TOKEN, f"Basic {METRICS_TOKEN}"])
def test_metrics_are_not_there_for_another_address_without_the_exact_token(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"}, headers=headers)
    assert response.status_code == 404
    assert b"idp_" not in response.data


def test_behind_a_trusted_proxy_the_forwarded_address_decides(app, settings, clock):
    """The proxy on loopback forwards an outside client: not loopback, so refused."""
    from idp import create_app

    proxied = create_app({**settings, "TRUSTED_PROXIES": 1}, clock=clock).test_client()
    outside = {"X-Forwarded-For": "203.0.113.7"}
    assert proxied.get("/metrics", headers=outside).status_code == 404
    assert proxied.get("/metrics", headers={**outside, "Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200


def test_without_a_configured_token_no_bearer_opens_metrics(app, settings, clock):
    from idp import create_app

    plain = create_app({**settings, "METRICS_TOKEN": ""}, clock=clock).test_client()
    for header in ({"Authorization": "Bearer "}, {"Authorization": "Bearer"}, {}):
        assert plain.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.1"}, headers=header).status_code == 404


def test_the_probes_and_metrics_take_no_session_and_set_no_cookie(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Set-Cookie" not in response.headers, path
