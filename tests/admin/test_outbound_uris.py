"""Request forgery, checked when a URI is stored: an inside back-channel logout URI typed in the
console or sent to dynamic registration is refused with its reason code, nothing is stored and
an edited client keeps its old values. (The same URIs are refused again when called:
tests/oidc/test_backchannel_outbound.py; the CLI: tests/integration/test_outbound.py.)"""

from __future__ import annotations

import pytest

from idp import clients as registry
from tests.admin.test_clients import (
    client_count,
    field_error,
    new_client,
    post_form,
    register,
    row,
    client_fields,
)
from tests.admin.test_registration_api import metadata, uses
from tests.oidc.conftest import REDIRECT_URI, bearer, reason_of

ATTACKS = [
    ("https://127.0.0.1/bc", "loopback"),
    ("https://localhost/bc", "loopback"),
    ("https://[::1]:8443/bc", "loopback"),
    ("https://127.1/bc", "ambiguous_ip_address"),
    ("https://0x7f.1/bc", "ambiguous_ip_address"),
    ("https://10.0.0.5/bc", "private"),
    ("https://192.168.1.20/bc", "private"),
    ("https://172.16.0.9/bc", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link_local"),
    ("https://[::ffff:127.0.0.1]/bc", "ipv4_embedded_literal"),
    ("https://[::ffff:169.254.169.254]/bc", "ipv4_embedded_literal"),
    ("https://rp.example@10.0.0.5/bc", "userinfo_not_allowed"),
]


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    settings["ALLOW_LOOPBACK_HTTP"] = False  # the production rule for outbound calls
    return settings


@pytest.fixture
def initial_token(app):
    _, token = registry.issue_initial_access_token("自助注册", 7, 5, "client_manager_1")
    return token


# --- the console ------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "reason"), ATTACKS)
def test_the_console_refuses_an_inside_backchannel_uri_and_stores_nothing(console, uri, reason):
    response = register(console("client_manager"), backchannel_logout_uri=uri)
    assert response.status_code == 400
    assert reason_of(response) == reason
    error = field_error(response, "backchannel_logout_uri")
    assert error and uri in error
    assert client_count() == 0


def test_an_edit_to_an_inside_backchannel_uri_is_refused_and_the_old_values_stay(console):
    c = console("client_manager")
    client_id, _ = new_client(c, backchannel_logout_uri="https://rp.example/bc")
    response = post_form(c, f"/admin/clients/{client_id}/edit",
                         client_fields(name="改过的名字", backchannel_logout_uri="https://169.254.169.254/latest"))
    assert response.status_code == 400 and reason_of(response) == "link_local"
    saved = row(client_id)
    assert saved.backchannel_logout_uri == "https://rp.example/bc"
    assert saved.name == "高新技术企业认定（测试）"


def test_the_console_accepts_a_name_whose_dns_does_not_exist_yet(console):
    client_id, _ = new_client(console("client_manager"),
                              backchannel_logout_uri="https://bc.not-yet-registered.invalid/logout")
    assert row(client_id).backchannel_logout_uri == "https://bc.not-yet-registered.invalid/logout"


def test_production_refuses_a_loopback_backchannel_uri_that_development_allows(app, console):
    c = console("client_manager")
    app.config["ALLOW_LOOPBACK_HTTP"] = True
    assert new_client(c, name="开发演示", backchannel_logout_uri="http://127.0.0.1:8400/bc")[0]
    app.config["ENV"] = "production"
    try:
        response = register(c, name="生产环境", backchannel_logout_uri="http://127.0.0.1:8400/bc")
    finally:
        app.config["ENV"] = "development"
    assert response.status_code == 400 and reason_of(response) == "loopback"
    assert client_count() == 1


# --- dynamic registration (RFC 7591 / 7592) ---------------------------------------------------


@pytest.mark.parametrize(("uri", "reason"), ATTACKS)
@pytest.mark.parametrize("field", ["backchannel_logout_uri", "logo_uri", "initiate_login_uri"])
def test_registration_refuses_inside_uris_with_invalid_client_metadata_and_spends_nothing(
        client, initial_token, field, uri, reason):
    response = client.post("/connect/register", headers=bearer(initial_token), json=metadata(**{field: uri}))
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "invalid_client_metadata"
    # Authlib's own URI check answers first for a few forms (a user name in logo_uri); an entry
    # link at an inside address is also on another origin than the redirect URIs, refused as such.
    assert body["error_description"] in (f"{field}: {reason}", f"Invalid claim: '{field}'",
                                         f"{field}: initiate_login_uri_origin_mismatch")
    assert client_count() == 0 and uses(initial_token) == 0


def test_a_registered_client_cannot_move_its_backchannel_uri_inside(client, initial_token):
    created = client.post("/connect/register", headers=bearer(initial_token), json=metadata()).get_json()
    configuration = "/connect/register/" + created["client_id"]
    update = {**metadata(backchannel_logout_uri="https://[::1]/bc"), "client_id": created["client_id"]}
    response = client.put(configuration, headers=bearer(created["registration_access_token"]), json=update)
    assert response.status_code == 400
    assert response.get_json()["error_description"] == "backchannel_logout_uri: loopback"
    assert row(created["client_id"]).backchannel_logout_uri == "https://rp.example/backchannel"


def test_registration_ignores_jwks_uri_so_nothing_is_ever_fetched_from_it(client, initial_token):
    """jwks_uri and sector_identifier_uri are not supported metadata (RFC 7591 §2: ignored):
    the provider never fetches a client's keys or sector document."""
    response = client.post("/connect/register", headers=bearer(initial_token),
                           json=metadata(jwks_uri="https://169.254.169.254/keys",
                                         sector_identifier_uri="https://10.0.0.1/sector.json"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert "jwks_uri" not in body and "sector_identifier_uri" not in body
    assert REDIRECT_URI in body["redirect_uris"]
