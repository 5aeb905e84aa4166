"""Clients are cached per process (idp.oauth.client_cache): a change made in this process holds
at once, a change made by another process within CHECK_SECONDS, and the cached copies cannot be
written back."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from idp.clients import find, rotate_secret, set_enabled
from idp.extensions import db, services
from idp.oauth import client_cache
from idp.oauth.storage import query_client
from tests.oidc.conftest import basic_auth


def client_credentials(client, client_id, secret):
    return client.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic_auth(client_id, secret))


def test_a_client_is_read_once_and_then_served_from_the_cache(app, make_client):
    client_id, _ = make_client(grant_types=["client_credentials"])
    statements = []

    def count(*args):
        statements.append(args)

    from sqlalchemy import event

    first = query_client(client_id)
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        again = query_client(client_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert again is first and statements == []


def test_disabling_a_client_here_refuses_it_at_once(app, client, make_client):
    client_id, secret = make_client(grant_types=["client_credentials"])
    assert client_credentials(client, client_id, secret).status_code == 200
    set_enabled(find(client_id), False, actor="admin")
    response = client_credentials(client, client_id, secret)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_a_rotated_secret_holds_at_once_and_the_old_one_only_for_the_grace_period(app, client, clock,
                                                                                  make_client):
    client_id, old = make_client(grant_types=["client_credentials"])
    assert client_credentials(client, client_id, old).status_code == 200
    new = rotate_secret(find(client_id), actor="admin")
    assert client_credentials(client, client_id, new).status_code == 200
    assert client_credentials(client, client_id, old).status_code == 200  # grace period
    clock.advance(app.config["CLIENT_SECRET_GRACE"] + 1)
    assert client_credentials(client, client_id, old).status_code == 401


def test_a_change_made_by_another_process_holds_within_the_check_interval(app, client, clock, make_client):
    """Another worker disables the client: it writes the row and a new generation to the shared
    store. This process keeps its copy until it next compares generations."""
    client_id, secret = make_client(grant_types=["client_credentials"])
    assert client_credentials(client, client_id, secret).status_code == 200

    other_worker = create_engine(app.config["DATABASE_URL"])
    with other_worker.begin() as conn:
        conn.execute(text("UPDATE clients SET enabled = false WHERE client_id = :id"), {"id": client_id})
    other_worker.dispose()
    services().store.set("clients:generation", b"another worker", 3600)

    assert client_credentials(client, client_id, secret).status_code == 200  # not yet compared
    clock.advance(client_cache.CHECK_SECONDS)
    response = client_credentials(client, client_id, secret)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_a_cached_copy_is_never_written_back(app, make_client):
    client_id, _ = make_client()
    cached = query_client(client_id)
    cached.name = "改过的名字"
    cached.redirect_uris.append("https://attacker.example/cb")
    db.session.commit()
    db.session.expire_all()
    row = find(client_id)
    assert row.name != "改过的名字" and "https://attacker.example/cb" not in row.redirect_uris
