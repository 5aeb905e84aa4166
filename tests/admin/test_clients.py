"""Console: business systems (clients) and initial access tokens — who may do what, secrets
shown once, metadata rules, logos checked by content, and clients usable (or refused) at once."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from html import unescape
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from idp import clients as registry
from idp.clients import ClientError, ClientSpec, check_uri
from idp.extensions import db
from idp.models.audit import AuditEvent
from idp.models.clients import Client, hash_secret
from idp.models.oauth import Consent, RefreshToken
from idp.models.staff import InitialAccessToken
from tests.admin.conftest import form_token
from tests.conftest import make_account
from tests.oidc.conftest import REDIRECT_URI, html, reason_of

EDITORS = ["superadmin", "client_manager"]


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


@pytest.fixture
def person(app):
    return make_account("natural", "zhang_san", email="zhangsan@example.cn")


# --- helpers ---------------------------------------------------------------------------------


def client_fields(**overrides) -> dict:
    fields = {
        "name": "高新技术企业认定（测试）",
        "description": "高企认定申报",
        "redirect_uris": REDIRECT_URI,
        "post_logout_redirect_uris": "",
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "profile"],
        "allowed_account_types": ["natural", "legal"],
        "token_endpoint_auth_method": "client_secret_basic",
        "initiate_login_uri": "",
        "backchannel_logout_uri": "",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def post_form(console, page_path: str, data: dict, action: str | None = None):
    """Open the page as a browser would, then post the form with the page's CSRF token."""
    page = console.get(page_path)
    assert page.status_code == 200, page.status_code
    return console.post(action or page_path, data={"csrf_token": form_token(html(page)), **data})


def register(console, logo: tuple[bytes, str] | None = None, **overrides):
    data = client_fields(**overrides)
    if logo is not None:
        data["logo"] = (io.BytesIO(logo[0]), logo[1])
    return post_form(console, "/admin/clients/new", data)


def shown_credentials(response) -> tuple[str, str | None]:
    page = html(response)
    client_id = unescape(re.search(r'class="client-id">([^<]+)<', page).group(1))
    secret = re.search(r'class="client-secret">([^<]+)<', page)
    return client_id, unescape(secret.group(1)) if secret else None


def new_client(console, **overrides) -> tuple[str, str | None]:
    response = register(console, **overrides)
    assert response.status_code == 200, html(response)[:3000]
    return shown_credentials(response)


def row(client_id: str) -> Client | None:
    db.session.expire_all()
    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


def client_count() -> int:
    db.session.expire_all()
    return len(db.session.execute(db.select(Client.id)).all())


def field_error(response, field: str) -> str | None:
    match = re.search(rf'id="{field}-error"[^>]*>([^<]*)<', html(response))
    return unescape(match.group(1)) if match else None


def any_token(console) -> str:
    """A valid CSRF token of this session (from the sign-out form every console page has)."""
    return form_token(html(console.get("/admin/")))


def png_bytes(size=(600, 300), mode="RGBA", **info) -> bytes:
    image = Image.new(mode, size, (200, 30, 30, 255) if mode == "RGBA" else (200, 30, 30))
    out = io.BytesIO()
    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    image.save(out, "PNG", pnginfo=meta)
    return out.getvalue()


def jpeg_bytes(size=(400, 400)) -> bytes:
    image = Image.new("RGB", size, (20, 90, 200))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small, valid PNG whose IHDR is rewritten to claim other dimensions (CRC fixed)."""
    data = bytearray(png_bytes((8, 8), "RGB"))
    ihdr = data[12:29]  # type + 13 bytes of IHDR data
    patched = b"IHDR" + struct.pack(">II", width, height) + bytes(ihdr[12:17])
    data[12:29] = patched
    data[29:33] = struct.pack(">I", zlib.crc32(patched) & 0xFFFFFFFF)
    return bytes(data)


def exactly(size: int) -> bytes:
    """A valid PNG padded with trailing bytes to exactly ``size`` bytes."""
    data = png_bytes((32, 32))
    return data + b"\0" * (size - len(data))


# --- who may do what -------------------------------------------------------------------------


def _pages(client_id: str) -> list[str]:
    return ["/admin/clients/", "/admin/clients/new", f"/admin/clients/{client_id}",
            f"/admin/clients/{client_id}/edit", f"/admin/clients/{client_id}/delete",
            "/admin/clients/initial-access-tokens", "/admin/clients/initial-access-tokens/new"]


def _posts(client_id: str, token_id: int) -> list[str]:
    return ["/admin/clients/new", f"/admin/clients/{client_id}/edit", f"/admin/clients/{client_id}/disable",
            f"/admin/clients/{client_id}/enable", f"/admin/clients/{client_id}/rotate-secret",
            f"/admin/clients/{client_id}/delete", "/admin/clients/initial-access-tokens/new",
            f"/admin/clients/initial-access-tokens/{token_id}/revoke"]


@pytest.fixture
def existing(app):
    """A client and an initial access token made through the service."""
    client, _ = registry.create(ClientSpec(name="科技型中小企业评价（测试）", redirect_uris=[REDIRECT_URI]))
    token, _ = registry.issue_initial_access_token("科小测试", 7, 1, "someone")
    return client.client_id, token.id


@pytest.mark.parametrize("role", EDITORS)
def test_super_administrators_and_client_managers_open_every_client_page(console, existing, role):
    client_id, _ = existing
    c = console(role)
    for path in _pages(client_id):
        assert c.get(path).status_code == 200, path
    detail = html(c.get(f"/admin/clients/{client_id}"))
    assert "/rotate-secret" in detail and "/disable" in detail and f"/admin/clients/{client_id}/edit" in detail


def test_the_side_navigation_links_the_client_pages_for_those_who_may_see_them(console):
    assert 'href="/admin/clients/"' in html(console("support").get("/admin/"))
    assert 'href="/admin/clients/"' not in html(console("reviewer").get("/admin/"))


def test_support_staff_see_clients_and_tokens_without_any_form_or_button(console, existing):
    client_id, _ = existing
    c = console("support")
    for path in ("/admin/clients/", f"/admin/clients/{client_id}", "/admin/clients/initial-access-tokens"):
        response = c.get(path)
        assert response.status_code == 200, path
        page = html(response)
        forms = re.findall(r"<form\b[^>]*>", page)
        assert all('action="/admin/logout"' in f or 'method="get"' in f for f in forms), forms
        assert "/admin/clients/new" not in page and "/edit" not in page and "/delete" not in page
        assert "initial-access-tokens/new" not in page
    for path in ("/admin/clients/new", f"/admin/clients/{client_id}/edit", f"/admin/clients/{client_id}/delete",
                 "/admin/clients/initial-access-tokens/new"):
        assert c.get(path).status_code == 403, path


def test_support_staff_get_403_on_every_post_and_nothing_changes(console, existing):
    client_id, token_id = existing
    c = console("support")
    token = any_token(c)
    for path in _posts(client_id, token_id):
        response = c.post(path, data={"csrf_token": token, **client_fields(name="改名"), "description": "x",
                                      "validity_days": "7", "max_uses": "1"})
        assert response.status_code == 403, path
    client = row(client_id)
    assert client.name == "科技型中小企业评价（测试）" and client.enabled
    assert client_count() == 1
    assert not db.session.get(InitialAccessToken, token_id).revoked
    assert len(registry.initial_access_tokens()) == 1


def test_a_reviewer_gets_403_on_every_client_page_and_post(console, existing):
    client_id, token_id = existing
    c = console("reviewer")
    for path in _pages(client_id):
        assert c.get(path).status_code == 403, path
    token = any_token(c)
    for path in _posts(client_id, token_id):
        assert c.post(path, data={"csrf_token": token, **client_fields()}).status_code == 403, path
    assert row(client_id).enabled and client_count() == 1


def test_visitors_who_are_not_signed_in_are_sent_to_the_staff_sign_in(client, existing):
    client_id, _ = existing
    for path in _pages(client_id):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path


# --- registering -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", EDITORS)
def test_registering_a_client_shows_its_secret_once(console, role):
    c = console(role)
    client_id, secret = new_client(c)
    client = row(client_id)
    assert client.name == "高新技术企业认定（测试）"
    assert secret and client.secret_hash == hash_secret(secret) and secret not in str(client.__dict__)
    for path in (f"/admin/clients/{client_id}", "/admin/clients/", f"/admin/clients/{client_id}/edit"):
        assert secret not in html(c.get(path)), path
    assert client_id in html(c.get("/admin/clients/"))


def test_a_client_registered_in_the_console_works_at_once_in_an_authorization_code_flow(console, rp, person):
    client_id, secret = new_client(console("client_manager"))
    tokens = rp.sign_in(client_id, secret)
    assert client_id in tokens["claims"]["aud"]
    assert tokens["flow"].pages == ["login", "consent"]  # not trusted: the user is asked
    assert tokens["refresh_token"]


def test_a_public_client_gets_no_secret_and_signs_in_with_pkce(console, rp, person):
    response = register(console("client_manager"), token_endpoint_auth_method="none")
    client_id, secret = shown_credentials(response)
    assert secret is None and 'data-reason="public_client"' in html(response)
    assert row(client_id).secret_hash is None
    tokens = rp.sign_in(client_id, None, auth="none", pkce=True)
    assert client_id in tokens["claims"]["aud"]


def test_every_metadata_field_of_the_form_is_stored(console):
    client_id, secret = new_client(
        console("superadmin"), name="人类遗传资源行政审批（测试）", description="采集、保藏\r\n国际合作",
        redirect_uris="https://hgr.example/cb\r\nhttps://hgr.example/cb2\r\n\r\n",
        post_logout_redirect_uris="https://hgr.example/\r\nhttp://127.0.0.1:8001/bye",
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scopes=["openid", "org", "delegation", "offline_access"], allowed_account_types=["legal"],
        token_endpoint_auth_method="client_secret_post", trusted="y",
        initiate_login_uri="https://hgr.example/login", backchannel_logout_uri="https://hgr.example/bcl")
    client = row(client_id)
    assert client.description == "采集、保藏\n国际合作"
    assert client.redirect_uris == ["https://hgr.example/cb", "https://hgr.example/cb2"]
    assert client.post_logout_redirect_uris == ["https://hgr.example/", "http://127.0.0.1:8001/bye"]
    assert client.grant_types == ["authorization_code", "refresh_token", "client_credentials"]
    assert client.scopes == ["openid", "org", "delegation", "offline_access"]
    assert client.allowed_account_types == ["legal"]
    assert client.token_endpoint_auth_method == "client_secret_post" and client.check_client_secret(secret)
    assert client.trusted and client.enabled and not client.registered_dynamically
    assert client.initiate_login_uri == "https://hgr.example/login"
    assert client.backchannel_logout_uri == "https://hgr.example/bcl"


@pytest.mark.parametrize("uri, reason", [
    ("https://*.rp.example/callback", "wildcard_not_allowed"),
    ("https://rp.example/*", "wildcard_not_allowed"),
    ("https://rp.example/callback#section", "fragment_not_allowed"),
    ("https://rp.example/callback#", "fragment_not_allowed"),
    ("/callback", "invalid_uri"),
    ("rp.example/callback", "invalid_uri"),
    ("javascript:alert(1)", "invalid_uri"),
    ("ftp://rp.example/callback", "invalid_uri"),
    ("https://rp.example/call back", "invalid_uri"),
])
def test_an_invalid_redirect_uri_is_refused_at_its_field_with_nothing_saved_and_the_input_kept(console, uri, reason):
    response = register(console("client_manager"), redirect_uris=f"https://rp.example/good\r\n{uri}",
                        scopes=["openid", "email"], description="保留的说明")
    assert response.status_code == 400
    assert reason_of(response) == reason
    error = field_error(response, "redirect_uris")
    assert error and uri.strip() in error
    assert client_count() == 0
    page = unescape(html(response))
    assert 'value="高新技术企业认定（测试）"' in page and "保留的说明" in page and uri in page
    assert re.search(r'<input[^>]*checked[^>]*value="email"|<input[^>]*value="email"[^>]*checked', page)


@pytest.mark.parametrize("field", ["post_logout_redirect_uris", "initiate_login_uri", "backchannel_logout_uri"])
def test_the_other_uris_follow_the_same_rules(console, field):
    response = register(console("client_manager"), **{field: "https://rp.example/*"})
    assert response.status_code == 400 and reason_of(response) == "wildcard_not_allowed"
    assert field_error(response, field)
    assert client_count() == 0


def test_http_redirect_uris_need_https_in_production_except_loopback(app):
    assert check_uri("http://rp.example/cb", "redirect_uris")  # development: plain http is fine
    app.config["ENV"] = "production"
    try:
        with pytest.raises(ClientError) as refused:
            check_uri("http://rp.example/cb", "redirect_uris")
        assert refused.value.reason == "https_required" and refused.value.field == "redirect_uris"
        for loopback in ("http://127.0.0.1:8080/cb", "http://localhost/cb", "http://[::1]:9000/cb"):
            assert check_uri(loopback, "redirect_uris") == loopback
        assert check_uri("https://rp.example/cb", "redirect_uris")
    finally:
        app.config["ENV"] = "development"


def test_the_console_explains_an_http_redirect_uri_refused_in_production(app, console):
    c = console("client_manager")
    app.config["ENV"] = "production"
    try:
        response = register(c, redirect_uris="http://rp.example/callback")
    finally:
        app.config["ENV"] = "development"
    assert response.status_code == 400 and reason_of(response) == "https_required"
    assert "http://rp.example/callback" in field_error(response, "redirect_uris")
    assert client_count() == 0


def test_a_duplicate_name_is_refused_at_the_name_field_with_nothing_saved_and_the_input_kept(console):
    c = console("client_manager")
    new_client(c)
    response = register(c, redirect_uris="https://other.example/cb", description="另一个系统")
    assert response.status_code == 400 and reason_of(response) == "duplicate_name"
    assert field_error(response, "name")
    assert client_count() == 1
    page = html(response)
    assert "https://other.example/cb" in page and "另一个系统" in page


def test_missing_choices_and_a_missing_name_are_field_errors(console):
    response = register(console("client_manager"), name="", grant_types=[], allowed_account_types=[])
    assert response.status_code == 400
    for field in ("name", "grant_types", "allowed_account_types"):
        assert field_error(response, field), field
    assert client_count() == 0


def test_a_public_client_cannot_use_client_credentials(console):
    response = register(console("client_manager"), token_endpoint_auth_method="none",
                        grant_types=["authorization_code", "client_credentials"])
    assert response.status_code == 400 and reason_of(response) == "public_client_credentials"
    assert field_error(response, "grant_types")


# --- editing ---------------------------------------------------------------------------------


def test_editing_changes_the_metadata_and_keeps_the_secret(console, rp, person):
    c = console("client_manager")
    client_id, secret = new_client(c)
    response = post_form(c, f"/admin/clients/{client_id}/edit", client_fields(
        name="高企认定（改名）", redirect_uris=f"{REDIRECT_URI}\r\nhttps://rp.example/second", trusted="y"))
    assert response.status_code == 302
    client = row(client_id)
    assert client.name == "高企认定（改名）" and client.trusted
    assert client.redirect_uris == [REDIRECT_URI, "https://rp.example/second"]
    assert rp.sign_in(client_id, secret)["flow"].pages == ["login"]  # trusted now: no consent


def test_the_edit_form_shows_the_current_values(console):
    c = console("client_manager")
    client_id, _ = new_client(c, post_logout_redirect_uris="https://rp.example/bye", allowed_account_types=["legal"])
    page = unescape(html(c.get(f"/admin/clients/{client_id}/edit")))
    assert 'value="高新技术企业认定（测试）"' in page and "https://rp.example/bye" in page
    assert re.search(r'<input[^>]*checked[^>]*value="legal"|<input[^>]*value="legal"[^>]*checked', page)
    assert not re.search(r'<input[^>]*checked[^>]*value="natural"|<input[^>]*value="natural"[^>]*checked', page)


def test_an_invalid_edit_is_refused_at_its_field_keeps_the_input_and_changes_nothing(console):
    c = console("client_manager")
    client_id, _ = new_client(c)
    before = dict(registry.find(client_id).__dict__)
    response = post_form(c, f"/admin/clients/{client_id}/edit", client_fields(
        name="新名字", redirect_uris="https://rp.example/callback#frag", description="新说明"))
    assert response.status_code == 400 and reason_of(response) == "fragment_not_allowed"
    assert field_error(response, "redirect_uris")
    page = html(response)
    assert "新名字" in page and "新说明" in page and "https://rp.example/callback#frag" in page
    client = row(client_id)
    assert client.name == before["name"] and client.redirect_uris == before["redirect_uris"]
    assert client.description == before["description"]


def test_an_edit_to_the_name_of_another_client_is_refused(console):
    c = console("client_manager")
    new_client(c, name="系统甲")
    client_id, _ = new_client(c, name="系统乙")
    response = post_form(c, f"/admin/clients/{client_id}/edit", client_fields(name="系统甲"))
    assert response.status_code == 400 and reason_of(response) == "duplicate_name"
    assert row(client_id).name == "系统乙"


def test_a_public_client_made_confidential_gets_a_secret_shown_once(console, rp, person):
    c = console("client_manager")
    client_id, _ = new_client(c, token_endpoint_auth_method="none")
    response = post_form(c, f"/admin/clients/{client_id}/edit", client_fields())
    assert response.status_code == 200
    _, secret = shown_credentials(response)
    assert secret and row(client_id).check_client_secret(secret)
    assert client_id in rp.sign_in(client_id, secret)["claims"]["aud"]
    post_form(c, f"/admin/clients/{client_id}/edit", client_fields(token_endpoint_auth_method="none"))
    assert row(client_id).secret_hash is None


# --- disabling, deleting, rotating ----------------------------------------------------------


def test_disabling_refuses_the_client_at_once_and_enabling_restores_it(console, rp, person, clock):
    c = console("client_manager")
    client_id, secret = new_client(c)
    flow = rp.authorize(client_id)
    response = post_form(c, f"/admin/clients/{client_id}", {}, action=f"/admin/clients/{client_id}/disable")
    assert response.status_code == 302 and not row(client_id).enabled
    page = rp.get(rp.authorize_url(client_id))
    assert page.status_code == 400 and "Location" not in page.headers and page.mimetype == "text/html"
    refused = rp.redeem(client_id, secret, flow.code)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert 'data-state="disabled"' in html(c.get("/admin/clients/"))
    post_form(c, f"/admin/clients/{client_id}", {}, action=f"/admin/clients/{client_id}/enable")
    assert row(client_id).enabled
    # What was issued up to the disable stays dead; the frozen clock must move on for a new code
    # to be told from those (a real clock always has, by the time staff enable the system again).
    clock.advance(1)
    assert client_id in rp.sign_in(client_id, secret)["claims"]["aud"]


def test_deleting_asks_first_then_removes_the_client_its_consents_and_refresh_tokens(console, rp, person):
    c = console("client_manager")
    client_id, secret = new_client(c)
    tokens = rp.sign_in(client_id, secret)
    assert db.session.execute(db.select(Consent).filter_by(client_id=client_id)).first()
    assert db.session.execute(db.select(RefreshToken).filter_by(client_id=client_id)).first()
    confirm = c.get(f"/admin/clients/{client_id}/delete")
    assert confirm.status_code == 200 and row(client_id) is not None
    response = post_form(c, f"/admin/clients/{client_id}/delete", {"confirm": "yes"})
    assert response.status_code == 302
    assert row(client_id) is None
    assert not db.session.execute(db.select(Consent).filter_by(client_id=client_id)).first()
    assert not db.session.execute(db.select(RefreshToken).filter_by(client_id=client_id)).first()
    assert rp.userinfo(tokens["access_token"]).status_code == 401  # its access token is revoked too
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 401
    assert c.get(f"/admin/clients/{client_id}").status_code == 404


def test_a_rotated_secret_replaces_the_old_one_after_the_grace_period(app, console, rp, clock):
    c = console("client_manager")
    client_id, old = new_client(c, redirect_uris="", grant_types=["client_credentials"])

    def works(secret):
        return rp.token(client_id, secret, grant_type="client_credentials").status_code == 200

    response = post_form(c, f"/admin/clients/{client_id}", {}, action=f"/admin/clients/{client_id}/rotate-secret")
    assert response.status_code == 200 and 'data-reason="grace_period"' in html(response)
    _, new = shown_credentials(response)
    assert new and new != old
    assert new not in html(c.get(f"/admin/clients/{client_id}"))
    assert works(old) and works(new)
    clock.advance(app.config["CLIENT_SECRET_GRACE"] - 5)
    assert works(old)
    clock.advance(6)
    assert not works(old) and works(new)


def test_a_public_client_has_no_secret_to_rotate(console):
    c = console("client_manager")
    client_id, _ = new_client(c, token_endpoint_auth_method="none")
    response = c.post(f"/admin/clients/{client_id}/rotate-secret", data={"csrf_token": any_token(c)})
    assert response.status_code == 400 and reason_of(response) == "public_client_has_no_secret"


def test_an_unknown_client_is_404(console):
    c = console("client_manager")
    assert c.get("/admin/clients/no-such-client").status_code == 404
    assert c.post("/admin/clients/no-such-client/disable", data={"csrf_token": any_token(c)}).status_code == 404


# --- the list --------------------------------------------------------------------------------


def test_the_list_filters_by_a_name_substring_taking_wildcards_literally(console):
    for name in ("100%_达标系统", "1000 系统", "Alpha 平台"):
        registry.create(ClientSpec(name=name, redirect_uris=[REDIRECT_URI]))
    c = console("support")

    def listed(q):
        page = html(c.get("/admin/clients/", query_string={"q": q}))
        return {n for n in ("100%_达标系统", "1000 系统", "Alpha 平台") if n in page}

    assert listed("%") == {"100%_达标系统"}
    assert listed("_") == {"100%_达标系统"}
    assert listed("00") == {"100%_达标系统", "1000 系统"}
    assert listed("alpha") == {"Alpha 平台"}
    assert listed("") == {"100%_达标系统", "1000 系统", "Alpha 平台"}
    assert listed("不存在") == set()


# --- logos -----------------------------------------------------------------------------------


def _stored_logo(app, client) -> Image.Image:
    path = Path(app.config["INSTANCE_DIR"]) / "uploads" / "logos" / client.logo_file
    assert path.is_file()
    return Image.open(path)


def test_a_png_logo_is_checked_re_encoded_stored_outside_the_web_root_and_served(app, console, rp, person):
    c = console("client_manager")
    client_id, _ = new_client(c, logo=(png_bytes((600, 300), Comment="secret metadata"), "logo.png"))
    client = row(client_id)
    stored = _stored_logo(app, client)
    assert stored.format == "PNG" and max(stored.size) <= 256 and stored.size == (256, 128)
    assert "Comment" not in stored.info
    assert client.logo_uri == f"{app.config['ISSUER']}/clients/{client_id}/logo.png"
    served = rp.get(f"/clients/{client_id}/logo.png")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(served.data)).size == (256, 128)
    consent = rp.authorize(client_id, consent=None).response
    assert f'src="{client.logo_uri}"' in html(consent)


def test_a_jpeg_logo_is_accepted_and_re_encoded_as_a_png_without_metadata(app, console):
    client_id, _ = new_client(console("client_manager"), logo=(jpeg_bytes(), "photo.jpg"))
    stored = _stored_logo(app, row(client_id))
    assert stored.format == "PNG" and stored.size == (256, 256)
    assert "exif" not in stored.info and not stored.getexif()


def test_a_logo_of_exactly_1_mb_is_accepted(app, console):
    client_id, _ = new_client(console("client_manager"), logo=(exactly(1024 * 1024), "big.png"))
    assert row(client_id).logo_file


BAD_LOGOS = {
    "html_named_png": (b"<!doctype html><html><script>alert(1)</script></html>", "logo.png", "logo_not_an_image"),
    "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", "logo.pdf",
            "logo_not_an_image"),
    "truncated_png": (png_bytes((200, 200))[:-40], "logo.png", "logo_not_an_image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.svg",
            "logo_not_an_image"),
    "bmp": (None, "logo.bmp", "logo_not_an_image"),
    "over_1_mb": (None, "logo.png", "logo_too_large"),
    "bomb_50000_square": (png_claiming(50000, 50000), "logo.png", "logo_too_many_pixels"),
    "bomb_5000_square": (png_claiming(5000, 5000), "logo.png", "logo_too_many_pixels"),
    "empty": (b"", "logo.png", "logo_not_an_image"),
}


def _bad_logo(kind: str) -> tuple[bytes, str, str]:
    data, filename, reason = BAD_LOGOS[kind]
    if kind == "over_1_mb":
        data = exactly(1024 * 1024 + 1)
    if kind == "bmp":
        out = io.BytesIO()
        Image.new("RGB", (10, 10)).save(out, "BMP")
        data = out.getvalue()
    return data, filename, reason


@pytest.mark.parametrize("kind", list(BAD_LOGOS))
def test_a_bad_logo_is_a_field_error_and_nothing_is_saved(console, kind):
    data, filename, reason = _bad_logo(kind)
    response = register(console("client_manager"), logo=(data, filename), description="保留的说明")
    assert response.status_code == 400
    assert reason_of(response) == reason
    assert field_error(response, "logo")
    assert "保留的说明" in html(response)
    assert client_count() == 0


@pytest.mark.parametrize("kind", ["html_named_png", "over_1_mb", "bomb_50000_square"])
def test_a_bad_logo_on_edit_changes_nothing(app, console, kind):
    c = console("client_manager")
    client_id, _ = new_client(c, logo=(png_bytes(), "logo.png"))
    before = row(client_id).logo_file
    data, filename, reason = _bad_logo(kind)
    response = post_form(c, f"/admin/clients/{client_id}/edit",
                         {**client_fields(name="新名字"), "logo": (io.BytesIO(data), filename)})
    assert response.status_code == 400 and reason_of(response) == reason
    client = row(client_id)
    assert client.logo_file == before and client.name == "高新技术企业认定（测试）"
    assert _stored_logo(app, client)


def test_a_new_logo_replaces_the_old_file(app, console):
    c = console("client_manager")
    client_id, _ = new_client(c, logo=(png_bytes(), "logo.png"))
    old = Path(app.config["INSTANCE_DIR"]) / "uploads" / "logos" / row(client_id).logo_file
    response = post_form(c, f"/admin/clients/{client_id}/edit",
                         {**client_fields(), "logo": (io.BytesIO(jpeg_bytes()), "new.jpg")})
    assert response.status_code == 302
    assert row(client_id).logo_file != old.name and not old.exists()


def test_a_client_without_a_logo_has_no_logo_route(client, existing):
    client_id, _ = existing
    assert client.get(f"/clients/{client_id}/logo.png").status_code == 404
    assert client.get("/clients/nobody/logo.png").status_code == 404


# --- CSRF and audit --------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["new", "edit", "disable", "enable", "rotate-secret", "delete",
                                    "token_new", "token_revoke"])
def test_every_form_needs_its_csrf_token(console, existing, action):
    client_id, token_id = existing
    c = console("superadmin")
    path = {"new": "/admin/clients/new", "token_new": "/admin/clients/initial-access-tokens/new",
            "token_revoke": f"/admin/clients/initial-access-tokens/{token_id}/revoke"}.get(
        action, f"/admin/clients/{client_id}/{action}")
    data = {**client_fields(name="CSRF 测试"), "validity_days": "7", "max_uses": "1"}
    for extra in ({}, {"csrf_token": "forged"}):
        response = c.post(path, data={**data, **extra})
        assert response.status_code == 400, path
        assert reason_of(response) == "csrf_failed"
    assert client_count() == 1 and row(client_id).enabled and row(client_id).name != "CSRF 测试"
    assert len(registry.initial_access_tokens()) == 1
    assert not db.session.get(InitialAccessToken, token_id).revoked


def test_every_change_is_in_the_audit_log_with_the_staff_member_and_without_secrets(console):
    c = console("client_manager")
    client_id, secret = new_client(c, logo=(png_bytes(), "logo.png"))
    post_form(c, f"/admin/clients/{client_id}/edit", client_fields(name="改名"))
    rotated = post_form(c, f"/admin/clients/{client_id}", {}, action=f"/admin/clients/{client_id}/rotate-secret")
    _, new_secret = shown_credentials(rotated)
    for action in ("disable", "enable"):
        post_form(c, f"/admin/clients/{client_id}", {}, action=f"/admin/clients/{client_id}/{action}")
    post_form(c, f"/admin/clients/{client_id}/delete", {})
    rows = db.session.execute(db.select(AuditEvent).filter_by(event="client_changed", subject=client_id)
                              .order_by(AuditEvent.id)).scalars().all()
    assert [r.details["action"] for r in rows] == ["created", "logo_changed", "updated", "secret_rotated",
                                                   "disabled", "enabled", "deleted"]
    assert all(r.actor == "client_manager_1" and r.outcome == "success" for r in rows)
    assert all(secret not in str(r.details) and new_secret not in str(r.details) for r in rows)


# --- initial access tokens -------------------------------------------------------------------


def test_an_initial_access_token_is_shown_once_stored_as_a_hash_and_can_be_revoked(console, clock):
    c = console("client_manager")
    response = post_form(c, "/admin/clients/initial-access-tokens/new",
                         {"description": "高企系统自助注册", "validity_days": "30", "max_uses": "2"})
    assert response.status_code == 200
    token = unescape(re.search(r'class="initial-access-token">([^<]+)<', html(response)).group(1))
    stored = registry.initial_access_tokens()[0]
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.max_uses == 2 and stored.created_by == "client_manager_1" and stored.description == "高企系统自助注册"
    assert abs((stored.expires_at - clock.now()).total_seconds() - 30 * 86400) < 2
    listing = html(c.get("/admin/clients/initial-access-tokens"))
    assert token not in listing and f'data-token="{stored.id}" data-state="active"' in listing
    assert registry.usable_initial_access_token(token) is not None
    post_form(c, "/admin/clients/initial-access-tokens", {},
              action=f"/admin/clients/initial-access-tokens/{stored.id}/revoke")
    assert 'data-state="revoked"' in html(c.get("/admin/clients/initial-access-tokens"))
    assert registry.usable_initial_access_token(token) is None
    audit = db.session.execute(db.select(AuditEvent).filter_by(event="staff_action").order_by(AuditEvent.id)
                               ).scalars().all()
    actions = [(a.actor, a.details.get("action")) for a in audit if a.details and "initial_access" in
               a.details.get("action", "")]
    assert actions == [("client_manager_1", "initial_access_token_issued"),
                       ("client_manager_1", "initial_access_token_revoked")]


@pytest.mark.parametrize("field, value", [("validity_days", "0"), ("validity_days", "366"),
                                          ("validity_days", "abc"), ("max_uses", "0"), ("max_uses", "1001")])
def test_an_initial_access_token_needs_sensible_limits(console, field, value):
    data = {"description": "测试", "validity_days": "7", "max_uses": "1", field: value}
    response = post_form(console("client_manager"), "/admin/clients/initial-access-tokens/new", data)
    assert response.status_code == 400 and field_error(response, field)
    assert registry.initial_access_tokens() == []
