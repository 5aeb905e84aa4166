"""The token endpoint, userinfo and introspection are answered in front of Flask
(idp.oauth.bare) and must stay so: they run here with Flask's request context made unusable —
every read of ``flask.request``, ``flask.session`` or the request context, and every push of
one, is recorded and raises — and still answer normally. A change that made the fast path lean
on Flask's request again (a helper reading ``request``, a request context pushed to make one
work) fails here, even where its error would have been caught and the answer looked right."""

from __future__ import annotations

import contextlib

import flask
import flask.ctx
import flask.globals
import pytest

from idp.extensions import services
from tests.oidc.conftest import basic_auth, bearer


class FlaskRequestUsed(RuntimeError):
    """Flask's request context was reached on a path that must not need it."""


@contextlib.contextmanager
def flask_request_unusable():
    """Within: the request, session and request-context proxies (whoever imported them) and
    ``RequestContext.push`` record what reached them and raise ``FlaskRequestUsed``."""
    uses: list[str] = []

    def poisoned(name):
        def use(*args, **kwargs):
            uses.append(name)
            raise FlaskRequestUsed(name)

        return use

    proxies = {"request": flask.globals.request, "session": flask.globals.session,
               "request_ctx": flask.globals.request_ctx}
    originals = {name: proxy._get_current_object for name, proxy in proxies.items()}
    for name, proxy in proxies.items():
        object.__setattr__(proxy, "_get_current_object", poisoned(name))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(flask.ctx.RequestContext, "push", poisoned("RequestContext.push"))
            yield uses
    finally:
        for name, proxy in proxies.items():
            object.__setattr__(proxy, "_get_current_object", originals[name])


@pytest.mark.parametrize("regression", ["a swallowed read of flask.request", "a request context pushed"])
def test_a_userinfo_that_leans_on_flasks_request_again_is_caught(app, rp, issued, monkeypatch, regression):
    """The check itself, against the two ways the fast path could slip back: a helper that
    reads ``flask.request`` and swallows the error (the answer still looks right), and a
    request context pushed so that such a helper works."""
    from idp.oauth import bare

    handler, methods = bare.ENDPOINTS["/userinfo"]

    def leaning(app_, request):
        if regression == "a swallowed read of flask.request":
            with contextlib.suppress(Exception):
                flask.request.headers.get("Accept-Language")
            return handler(app_, request)
        with app_.test_request_context(request.path, environ_base=request.environ):
            return handler(app_, request)

    monkeypatch.setitem(bare.ENDPOINTS, "/userinfo", (leaning, methods))
    with flask_request_unusable() as uses:
        response = rp.userinfo(issued[2]["access_token"])
    if regression == "a swallowed read of flask.request":
        assert uses == ["request"] and response.status_code == 200  # looked right: the record tells
    else:
        assert uses == ["RequestContext.push"] and response.status_code == 500
        assert response.get_json()["error"] == "server_error"


def test_code_exchange_refresh_userinfo_and_introspection_answer_without_flasks_request(
        app, rp, make_client, person, clock):
    from idp.oauth import userinfo_cache

    clock.advance(userinfo_cache.TOMBSTONE_SECONDS)  # the account's creation left a tombstone
    client_id, secret = make_client(trusted=True)
    flow = rp.authorize(client_id, scope="openid profile email", pkce=True)  # pages: Flask's
    assert flow.response.status_code == 302 and "code" in flow.params

    with flask_request_unusable() as uses:
        exchanged = rp.redeem(client_id, secret, flow.code, code_verifier=flow.verifier)
        assert exchanged.status_code == 200, exchanged.get_json()
        tokens = exchanged.get_json()
        refreshed = rp.refresh(client_id, secret, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.get_json()
        access_token = refreshed.get_json()["access_token"]
        by_header = rp.userinfo(access_token)  # read from the database, then cached
        by_body = rp.browser.post("/userinfo", data={"access_token": access_token})  # from the cache
        introspected = rp.browser.post("/introspect", data={"token": access_token},
                                       headers=basic_auth(client_id, secret))
        refused = rp.userinfo("not-a-token")
    assert uses == []

    assert rp.verify_id_token(tokens["id_token"], client_id)["sub"] == person.sub
    assert refreshed.get_json()["refresh_token"] != tokens["refresh_token"]
    assert by_header.status_code == by_body.status_code == 200
    assert by_header.get_json() == by_body.get_json()
    assert by_header.get_json()["sub"] == person.sub
    assert by_header.get_json()["email"] == "zhangsan@example.cn"
    stored = services().store.get(userinfo_cache.key(person.sub))
    assert stored and stored != b"-"
    answer = introspected.get_json()
    assert introspected.status_code == 200 and answer["active"] is True and answer["sub"] == person.sub
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"
    for response in (exchanged, refreshed, by_header, by_body, introspected):
        assert response.headers["Cache-Control"] == "no-store"
    # The answers are the same with Flask's request context usable.
    assert rp.userinfo(access_token).get_json() == by_header.get_json()
