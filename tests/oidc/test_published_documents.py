"""Discovery and JWKS are answered before Flask once Flask has made them (idp.oauth.published):
the same bytes and headers, a new answer as soon as the keys change, and everything unusual
left to Flask."""

from __future__ import annotations

import pytest
from flask import request_started

from idp import unit_of_work
from idp.oauth import keys

PATHS = ["/.well-known/openid-configuration", "/jwks.json"]


@pytest.fixture
def flask_requests(app):
    seen = []

    def note(sender, **extra):
        from flask import request

        seen.append(request.full_path)

    request_started.connect(note, app)
    yield seen
    request_started.disconnect(note, app)


@pytest.mark.parametrize("path", PATHS)
def test_the_second_answer_is_the_first_one_without_flask(client, flask_requests, path):
    first = client.get(path)
    second = client.get(path)
    assert first.status_code == second.status_code == 200
    assert second.data == first.data
    def kept(headers):  # the request id is each answer's own (idp.ops)
        return sorted((k, v) for k, v in headers.items() if k != "X-Request-ID")

    assert kept(second.headers) == kept(first.headers)
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    assert second.headers["Content-Security-Policy"] and second.headers["ETag"]
    assert second.headers["Cache-Control"] == "public, max-age=300"
    assert len(flask_requests) == 1
    head = client.head(path)
    assert head.status_code == 200 and head.data == b"" and len(flask_requests) == 1


def test_rotated_keys_are_published_at_once(app, client):
    before = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    with app.app_context(), unit_of_work.unit():  # as `idp keys rotate` runs it
        new = set(keys.rotate())
    after = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    assert new <= after and before <= after and new.isdisjoint(before)


def test_the_jwks_is_made_again_when_the_key_cache_runs_out(app, client, clock, flask_requests):
    client.get("/jwks.json")
    client.get("/jwks.json")
    assert len(flask_requests) == 1
    clock.advance(31)
    client.get("/jwks.json")
    assert len(flask_requests) == 2


@pytest.mark.parametrize("path", PATHS)
def test_conditional_requests_and_query_strings_go_to_flask(client, flask_requests, path):
    etag = client.get(path).headers["ETag"]
    client.get(path)
    not_modified = client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.data == b""
    with_query = client.get(path + "?lang=en")
    assert with_query.status_code == 200 and "idp_lang=en" in with_query.headers.get("Set-Cookie", "")
    assert len(flask_requests) == 3


def test_other_methods_are_refused_by_flask(client):
    client.get("/jwks.json")
    assert client.post("/jwks.json").status_code == 405
