"""Basic OP: the userinfo endpoint (OIDC Core §5.3, §5.4; RFC 6750 §2 and §3): claims by
scope, the three ways of sending the token, and the bearer-token errors."""

from __future__ import annotations

import re

import pytest

from idp.extensions import db
from tests.oidc.conftest import basic_auth, bearer


@pytest.fixture
def trusted(make_client):
    return make_client(trusted=True)


def tokens_for(rp, trusted, scope, **kwargs):
    client_id, secret = trusted
    return rp.sign_in(client_id, secret, scope=scope, **kwargs)


def info(rp, token) -> dict:
    response = rp.userinfo(token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def assert_no_empty_values(claims: dict) -> None:
    for key, value in claims.items():
        assert value not in ("", None, [], {}), key
        if isinstance(value, dict):
            assert_no_empty_values(value)


# --- claims by scope -------------------------------------------------------------------------


def test_openid_alone_gives_sub_and_account_type(rp, trusted, person):
    tokens = tokens_for(rp, trusted, "openid")
    claims = info(rp, tokens["access_token"])
    assert claims == {"sub": person.sub, "account_type": "natural"}
    assert claims["sub"] == tokens["claims"]["sub"]


def test_profile_scope_gives_profile_claims(rp, trusted, person):
    claims = info(rp, tokens_for(rp, trusted, "openid profile")["access_token"])
    assert claims["preferred_username"] == "zhang_san"
    assert claims["name"] == "张三"
    assert "email" not in claims and "phone_number" not in claims
    assert_no_empty_values(claims)


def test_email_scope_gives_the_email(rp, trusted, person):
    claims = info(rp, tokens_for(rp, trusted, "openid email")["access_token"])
    assert claims["email"] == "zhangsan@example.cn"
    assert isinstance(claims["email_verified"], bool)
    assert "name" not in claims


def test_phone_scope_gives_the_phone_number_in_e164(rp, trusted, person):
    claims = info(rp, tokens_for(rp, trusted, "openid phone")["access_token"])
    assert claims["phone_number"] == "+8613800138000"
    assert isinstance(claims["phone_number_verified"], bool)


def test_address_scope_gives_the_address_as_a_structure(rp, trusted, person):
    person.address = "福建省福州市鼓楼区五四路 1 号"
    db.session.commit()
    claims = info(rp, tokens_for(rp, trusted, "openid address")["access_token"])
    assert claims["address"] == {"formatted": "福建省福州市鼓楼区五四路 1 号"}


def test_absent_data_means_absent_claims_never_empty_strings(rp, trusted, app):
    from tests.conftest import make_account

    make_account("natural", "wang_wu", name="王五", phone="13700137000", email=None)
    tokens = tokens_for(rp, trusted, "openid profile email phone address", login_name="wang_wu")
    claims = info(rp, tokens["access_token"])
    for absent in ("email", "email_verified", "address", "gender", "birthdate"):
        assert absent not in claims, absent
    assert_no_empty_values(claims)


def test_scope_claims_never_exceed_the_granted_scope(rp, make_client, person):
    client_id, secret = make_client(trusted=True, scopes=["openid", "profile"])
    tokens = rp.sign_in(client_id, secret, scope="openid profile email phone")
    assert tokens["scope"].split() == ["openid", "profile"]
    claims = info(rp, tokens["access_token"])
    assert "email" not in claims and "phone_number" not in claims


def test_org_scope_gives_the_unit_of_a_legal_account(rp, trusted, unit):
    tokens = tokens_for(rp, trusted, "openid org", login_name="fz_unit", account_type="legal")
    claims = info(rp, tokens["access_token"])
    assert claims["account_type"] == "legal"
    assert claims["org"]["name"] == "福州示例有限公司"
    assert claims["org"]["uscc"] == "91350100M000100Y43"
    assert claims["org"]["kind"] == "enterprise"


def test_org_scope_gives_nothing_for_a_natural_person(rp, trusted, person):
    claims = info(rp, tokens_for(rp, trusted, "openid org")["access_token"])
    assert "org" not in claims


def test_verification_scope_says_unverified_for_a_new_account(rp, trusted, person):
    claims = info(rp, tokens_for(rp, trusted, "openid verification")["access_token"])
    assert claims["verification_status"] == "unverified"
    assert "verified_claims" not in claims


def test_userinfo_sub_equals_the_id_token_sub(rp, trusted, person):
    tokens = tokens_for(rp, trusted, "openid profile")
    assert info(rp, tokens["access_token"])["sub"] == tokens["claims"]["sub"]


# --- how the token is sent -------------------------------------------------------------------


def test_userinfo_by_get_with_the_authorization_header(rp, trusted, person):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    response = rp.browser.get("/userinfo", headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["sub"] == person.sub
    assert "no-store" in response.headers["Cache-Control"]


def test_userinfo_by_post_with_the_authorization_header(rp, trusted, person):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    response = rp.browser.post("/userinfo", headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["sub"] == person.sub


def test_userinfo_by_post_with_the_token_in_the_form_body(rp, trusted, person):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    response = rp.browser.post("/userinfo", data={"access_token": token})
    assert response.status_code == 200 and response.get_json()["sub"] == person.sub


def test_userinfo_bearer_scheme_is_case_insensitive(rp, trusted, person):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    response = rp.browser.get("/userinfo", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_userinfo_with_the_token_in_header_and_body_is_an_invalid_request(rp, trusted, person):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    response = rp.browser.post("/userinfo", headers=bearer(token), data={"access_token": token})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


# --- bearer-token errors ---------------------------------------------------------------------


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    assert re.search(r'error="invalid_token"', challenge), challenge


def test_userinfo_without_a_token_asks_for_one(rp):
    response = rp.browser.get("/userinfo")
    assert response.status_code == 401
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer ")
    # RFC 6750 §3.1: with no authentication information, no error code.
    assert "invalid_token" not in challenge


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "x" * 9000])
def test_userinfo_with_a_garbage_token_is_invalid_token(rp, token):
    assert_invalid_token(rp.browser.get("/userinfo", headers=bearer(token)))


def test_userinfo_with_an_expired_token_is_invalid_token(rp, trusted, person, clock, app):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    clock.advance(app.config["ACCESS_TOKEN_TTL"] + 1)
    assert_invalid_token(rp.userinfo(token))


def test_userinfo_with_a_revoked_token_is_invalid_token(rp, trusted, person):
    """Revoked through its grant: revoking the refresh token ends the access token too
    (the access-token path of /revoke is tested in test_revocation)."""
    client_id, secret = trusted
    tokens = tokens_for(rp, trusted, "openid")
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    revoked = rp.browser.post("/revoke", data={"token": tokens["refresh_token"]},
                              headers=basic_auth(client_id, secret))
    assert revoked.status_code == 200
    assert_invalid_token(rp.userinfo(tokens["access_token"]))


def test_userinfo_with_a_tampered_token_is_invalid_token(rp, trusted, person):
    token = tokens_for(rp, trusted, "openid")["access_token"]
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_invalid_token(rp.userinfo(f"{head}.{payload}.{flipped}"))


def test_userinfo_refuses_an_id_token_as_access_token(rp, trusted, person):
    tokens = tokens_for(rp, trusted, "openid")
    assert_invalid_token(rp.userinfo(tokens["id_token"]))


def test_userinfo_with_a_client_credentials_token_is_refused(rp, make_client):
    client_id, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    token = rp.browser.post("/token", data={"grant_type": "client_credentials"},
                            headers=basic_auth(client_id, secret)).get_json()["access_token"]
    response = rp.userinfo(token)
    assert response.status_code in (401, 403)
    assert "WWW-Authenticate" in response.headers


# --- the account data userinfo reads: the claim columns, cached (idp.oauth.userinfo_cache) ---


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self):
        from sqlalchemy import event

        event.listen(db.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc) -> None:
        from sqlalchemy import event

        event.remove(db.engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, *args) -> None:
        self.statements.append(statement)

    @property
    def selects(self) -> int:
        return sum(1 for s in self.statements if s.lstrip().upper().startswith("SELECT") and "FROM accounts" in s)


def verify(account, document_number: str | None = None) -> None:
    """Real-name verification by the automatic check (local verifier: check digits)."""
    from idp.verification import service

    if account.is_legal:
        service.save_profile(account, {})
    else:
        account.document_type = "resident_id"
        account.identity_region = "mainland"
        service.save_profile(account, {"document_number": document_number or "11010519491231002X"})
    assert account.verification_status == "verified_auto"
    db.session.commit()  # the service only flushes: the test's own unit of work ends here


def whole_row_claims(account, scope: str) -> dict:
    from idp.models.accounts import Account
    from idp.oauth.claims import user_claims

    db.session.expire_all()
    return dict(user_claims(db.session.get(Account, account.id), scope))


@pytest.mark.parametrize("account_type", ["natural", "legal"])
@pytest.mark.parametrize("verified", [False, True])
def test_userinfo_reads_the_account_once_then_from_the_cache_with_the_same_claims(rp, trusted, person, unit, clock,
                                                                                   account_type, verified):
    from idp.oauth import userinfo_cache
    from tests.oidc.conftest import ALL_SCOPES

    account = person if account_type == "natural" else unit
    if verified:
        verify(account)  # a change of claim columns: a tombstone for a while
        clock.advance(userinfo_cache.TOMBSTONE_SECONDS)
    scope = " ".join(ALL_SCOPES)
    token = tokens_for(rp, trusted, scope, login_name=account.login_name, account_type=account_type)["access_token"]
    expected = whole_row_claims(account, scope)
    assert ("verified_claims" in expected) == verified
    with StatementCounter() as first:
        assert info(rp, token) == expected
    with StatementCounter() as second:
        assert info(rp, token) == expected
    assert first.selects == 1 and second.selects == 0


def test_a_profile_change_is_in_userinfo_at_once(app, rp, trusted, person):
    from idp.accounts.service import update_profile

    token = tokens_for(rp, trusted, "openid email")["access_token"]
    assert info(rp, token)["email"] == "zhangsan@example.cn"
    update_profile(person, {"email": "new@example.cn"})
    assert info(rp, token)["email"] == "new@example.cn"
    assert info(rp, token)["email"] == "new@example.cn"  # the cache filled again, with the new value


def test_a_copy_read_before_a_change_cannot_overwrite_it(app, rp, trusted, person):
    """A reader that loaded the row before a commit adds its copy only where no entry is: the
    commit left a tombstone, so the old copy stays out and the next reader goes to the database."""
    from idp.extensions import services
    from idp.oauth import userinfo_cache

    token = tokens_for(rp, trusted, "openid email")["access_token"]
    info(rp, token)
    person.email = "new@example.cn"
    db.session.commit()
    stale = services().keyring.encrypt('{"values": {"sub": "x"}, "times": []}', "cache.userinfo").encode()
    assert services().store.add("userinfo:" + person.sub, stale, userinfo_cache.TTL_SECONDS) is False
    assert info(rp, token)["email"] == "new@example.cn"


def test_the_cached_copy_is_encrypted_and_expires(app, rp, trusted, person, clock):
    from idp.extensions import services
    from idp.oauth import userinfo_cache

    token = tokens_for(rp, trusted, "openid profile email phone")["access_token"]
    info(rp, token)
    raw = services().store.get("userinfo:" + person.sub)
    assert raw and b"zhangsan@example.cn" not in raw and "张三".encode() not in raw
    clock.advance(userinfo_cache.TTL_SECONDS + 1)
    assert services().store.get("userinfo:" + person.sub) is None
    with StatementCounter() as again:
        assert info(rp, token)["email"] == "zhangsan@example.cn"
    assert again.selects == 1


def test_an_undecryptable_copy_is_read_again_from_the_database(app, rp, trusted, person):
    from idp.extensions import services

    token = tokens_for(rp, trusted, "openid email")["access_token"]
    info(rp, token)
    services().store.set("userinfo:" + person.sub, b"v1.gone.AAAA", 300)
    assert info(rp, token)["email"] == "zhangsan@example.cn"


def test_a_sign_in_keeps_the_cached_copy(app, rp, trusted, person, clock):
    """A sign-in writes the account (last_login_at) but no claim column: the entry stays."""
    from idp.extensions import services
    from idp.oauth import userinfo_cache

    clock.advance(userinfo_cache.TOMBSTONE_SECONDS)
    token = tokens_for(rp, trusted, "openid email")["access_token"]
    info(rp, token)
    entry = services().store.get(userinfo_cache.key(person.sub))
    assert entry and entry != b"-"
    db.session.expire_all()
    before = db.session.get(type(person), person.id).last_login_at
    clock.advance(1)
    tokens_for(rp, trusted, "openid email", prompt="login")
    db.session.expire_all()
    assert db.session.get(type(person), person.id).last_login_at > before
    assert services().store.get(userinfo_cache.key(person.sub)) == entry


# --- verified tokens remembered (idp.oauth.server._verified) ----------------------------------


def test_a_verified_token_is_remembered_and_still_expires(rp, trusted, person, clock, app, monkeypatch):
    from idp.oauth import keys, server

    # The key set stays the same object past the token's lifetime, so the remembered entry
    # (not a fresh verification) is what meets the expiry.
    monkeypatch.setattr(keys, "_CACHE_SECONDS", 10 * app.config["ACCESS_TOKEN_TTL"])
    keys.invalidate()
    token = tokens_for(rp, trusted, "openid")["access_token"]
    first = info(rp, token)
    assert token in server._verified
    assert info(rp, token) == first
    clock.advance(app.config["ACCESS_TOKEN_TTL"] + 1)
    with app.app_context():
        assert server._verified[token][0] is keys.verification_keys()
    assert_invalid_token(rp.userinfo(token))


def test_a_remembered_token_is_refused_once_its_key_leaves_the_key_set(rp, trusted, person, app):
    """A key removed by hand (a leaked key) stops its tokens at the next key-set load, however
    often they were verified before."""
    import jwt

    from idp.models.oauth import SigningKey
    from idp.oauth import keys, server

    token = tokens_for(rp, trusted, "openid")["access_token"]
    assert rp.userinfo(token).status_code == 200 and token in server._verified
    keys.rotate()
    db.session.commit()  # `idp keys rotate` commits its unit of work
    with app.app_context():
        db.session.execute(db.delete(SigningKey).filter_by(kid=jwt.get_unverified_header(token)["kid"]))
        db.session.commit()
    keys.invalidate()
    assert_invalid_token(rp.userinfo(token))


def test_a_tampered_or_foreign_token_is_never_remembered(rp, trusted, person):
    from idp.oauth import server

    tokens = tokens_for(rp, trusted, "openid")
    head, payload, signature = tokens["access_token"].split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    for bad in (tampered, tokens["id_token"]):
        assert_invalid_token(rp.userinfo(bad))
        assert bad not in server._verified


def test_the_remembered_tokens_are_bounded(rp, trusted, person, monkeypatch):
    from idp.oauth import server

    monkeypatch.setattr(server, "_VERIFIED_MAX", 2)
    server._verified.clear()
    issued = [tokens_for(rp, trusted, "openid", prompt="login")["access_token"] for _ in range(3)]
    for token in issued:
        assert rp.userinfo(token).status_code == 200
    assert list(server._verified) == issued[1:]
    assert rp.userinfo(issued[0]).status_code == 200  # verified again, not refused
