"""The token endpoint, userinfo and introspection are answered in front of Flask
(idp.oauth.bare): they keep the headers, the limits, the audit and the error answers that every
other endpoint has."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.models.audit import AuditEvent
from tests.oidc.conftest import basic_auth, bearer

TEN_MB = 10 * 1024 * 1024


def assert_security_headers(response) -> None:
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_three_carry_the_security_headers(rp, issued):
    client_id, secret, tokens = issued
    answers = [rp.refresh(client_id, secret, tokens["refresh_token"]),
               rp.refresh(client_id, "wrong", tokens["refresh_token"]),
               rp.userinfo(tokens["access_token"]), rp.browser.get("/userinfo"),
               rp.browser.post("/introspect", data={"token": tokens["access_token"]},
                               headers=basic_auth(client_id, secret)),
               rp.browser.post("/introspect", data={"token": tokens["access_token"]})]
    assert [answer.status_code for answer in answers] == [200, 401, 200, 401, 200, 401]
    for answer in answers:
        assert_security_headers(answer)


def test_hsts_is_sent_in_production(app, rp, issued):
    bare = app.wsgi_app.wsgi_app  # behind the operations layer (idp.ops)
    bare.production = True
    try:
        response = rp.userinfo(issued[2]["access_token"])
    finally:
        bare.production = False
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/userinfo", "GET, HEAD, POST, OPTIONS"), ("DELETE", "/userinfo", "GET, HEAD, POST, OPTIONS"),
    ("GET", "/introspect", "POST, OPTIONS"), ("PUT", "/introspect", "POST, OPTIONS"),
    ("GET", "/token", "POST, OPTIONS"),
])
def test_another_method_is_405_with_the_allowed_ones(rp, method, path, allow):
    response = rp.browser.open(path, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.get_json()["error"] == "invalid_request"
    assert_security_headers(response)


@pytest.mark.parametrize("path", ["/token", "/userinfo", "/introspect"])
def test_a_10_mb_body_is_refused_with_413_and_audited(app, rp, issued, path):
    client_id, secret, tokens = issued
    response = rp.browser.post(path, data=b"token=" + b"y" * TEN_MB,
                               content_type="application/x-www-form-urlencoded",
                               headers=basic_auth(client_id, secret))
    assert response.status_code == 413
    assert response.get_json()["error"] == "invalid_request"
    assert b"Traceback" not in response.data
    with app.app_context():
        refused = db.session.execute(db.select(AuditEvent).filter_by(event="request_refused")
                                     .order_by(AuditEvent.id.desc())).scalars().first()
    assert refused.details == {"reason": "too_large"} and refused.subject == path
    assert rp.userinfo(tokens["access_token"]).status_code == 200  # nothing else changed


class BrokenStore:
    """A store whose server has gone away."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("the store is unreachable")
        return fail


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(app, rp, issued, caplog):
    services = app.extensions["idp.services"]
    store, services.store = services.store, BrokenStore()
    try:
        response = rp.userinfo(issued[2]["access_token"])
    finally:
        services.store = store
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error", "error_description": "Please try again later."}
    assert b"Traceback" not in response.data and b"unreachable" not in response.data
    assert_security_headers(response)
    assert "unhandled error" in caplog.text
    assert rp.userinfo(issued[2]["access_token"]).status_code == 200


def test_head_on_userinfo_answers_as_get_without_the_body(rp, issued):
    token = issued[2]["access_token"]
    head = rp.browser.head("/userinfo", headers=bearer(token))
    get = rp.userinfo(token)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"] == "application/json"
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert_security_headers(head)


@pytest.mark.parametrize(("path", "allow"), [("/userinfo", "GET, HEAD, POST, OPTIONS"),
                                             ("/introspect", "POST, OPTIONS"), ("/token", "POST, OPTIONS")])
def test_options_names_the_methods(rp, path, allow):
    response = rp.browser.options(path)
    assert response.status_code == 200 and response.headers["Allow"] == allow
    assert response.data == b""


@pytest.mark.parametrize("base_url, status", [("http://idp.example.cn", 400), ("https://idp.example.cn", 200),
                                              ("http://127.0.0.1:8080", 200)])
def test_the_token_endpoint_and_introspection_refuse_plain_http_except_on_loopback(rp, issued, base_url, status):
    client_id, secret, tokens = issued
    answers = [rp.browser.post("/introspect", base_url=base_url, data={"token": tokens["access_token"]},
                               headers=basic_auth(client_id, secret)),
               rp.browser.post("/token", base_url=base_url, headers=basic_auth(client_id, secret),
                               data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})]
    for answer in answers:
        assert answer.status_code == status, answer.get_json()
        if status == 400:
            assert answer.get_json()["error"] == "insecure_transport"


def test_revocation_over_plain_http_to_another_host_is_refused_in_json_not_a_500(rp, issued):
    client_id, secret, tokens = issued
    answer = rp.browser.post("/revoke", base_url="http://idp.example.cn", data={"token": tokens["access_token"]},
                             headers=basic_auth(client_id, secret))
    assert answer.status_code == 400 and answer.get_json()["error"] == "insecure_transport"
    assert answer.headers["Cache-Control"] == "no-store"
    assert rp.userinfo(tokens["access_token"]).status_code == 200  # nothing was revoked
