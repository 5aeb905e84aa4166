"""Fixtures for the OpenID Connect conformance tests (the checks of the OpenID Foundation's
Basic OP and Config OP test plans, run locally).

A relying party (``rp``) drives whole authorization-code flows through the Flask test client
as a browser would: /authorize → /login → /authorize → consent → the redirect to the client.
ID tokens and other JWTs are checked with PyJWT, an independent JOSE library, against the
keys published at /jwks.json — never with the provider's own code.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from jinja2 import BytecodeCache

from tests.conftest import PASSWORD, make_account

ISSUER = "http://localhost"
REDIRECT_URI = "https://rp.example/callback"
ALL_SCOPES = ["openid", "profile", "email", "phone", "address", "offline_access", "verification",
              "org", "delegation"]


# --- settings and clients --------------------------------------------------------------------


@pytest.fixture
def settings(settings):
    """Captcha off: a sign-in is a plain POST (the captcha has its own tests)."""
    settings["CAPTCHA"] = "off"
    settings["ISSUER"] = ISSUER
    return settings


_SIGNING_KEYS: list[dict] = []  # generated once per run, installed afresh in every test


class _SharedTemplateCache(BytecodeCache):
    """Compiled templates shared by the apps of one run (each test builds a new app); the
    bucket checks the source checksum, so an edited template is compiled afresh."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_TEMPLATE_CACHE = _SharedTemplateCache()


@pytest.fixture
def app(app):
    """The provider of tests/conftest.py, made cheaper to run: commits without waiting for the
    disk (SQLite synchronous=OFF, PostgreSQL synchronous_commit=off: the database is thrown
    away), and signing keys generated once per run instead of once per test
    (the tables are emptied between tests), compiled templates shared between tests. Key
    generation itself is tested by the rotation tests, which generate new keys."""
    from sqlalchemy import event

    from idp.extensions import db
    from idp.models.oauth import SigningKey
    from idp.oauth import keys

    no_fsync = {"sqlite": "PRAGMA synchronous=OFF",
                "postgresql": "SET synchronous_commit TO OFF"}.get(db.engine.dialect.name)
    if no_fsync:
        def on_connect(dbapi_connection, record):
            cursor = dbapi_connection.cursor()
            cursor.execute(no_fsync)
            cursor.close()
            if db.engine.dialect.name == "postgresql":
                dbapi_connection.commit()

        event.listen(db.engine, "connect", on_connect)
        db.session.remove()
        db.engine.dispose()
    if not _SIGNING_KEYS:
        keys.ensure_keys()
        _SIGNING_KEYS.extend(
            {"kid": row.kid, "alg": row.alg, "private_jwk": row.private_jwk, "public_jwk": row.public_jwk}
            for row in db.session.execute(db.select(SigningKey).filter_by(active=True)).scalars())
    else:
        for material in _SIGNING_KEYS:
            db.session.add(SigningKey(active=True, **material))
        db.session.commit()
    keys.invalidate()
    app.jinja_env.bytecode_cache = _TEMPLATE_CACHE
    return app


@pytest.fixture
def make_client(app):
    """``make_client(**ClientSpec fields)`` → (client_id, secret); defaults: confidential,
    client_secret_basic, one redirect URI, every scope, both account types, not trusted."""
    from idp.clients import ClientSpec, create

    numbers = itertools.count(1)

    def make(**spec):
        spec.setdefault("name", f"业务系统 {next(numbers)}")
        spec.setdefault("redirect_uris", [REDIRECT_URI])
        spec.setdefault("scopes", list(ALL_SCOPES))
        client, secret = create(ClientSpec(**spec))
        return client.client_id, secret

    return make


def client_row(client_id: str):
    from idp.extensions import db
    from idp.models.clients import Client

    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one()


def set_client(client_id: str, **columns) -> None:
    """Set columns of a Client row directly (what ClientSpec does not cover)."""
    from idp.extensions import db

    row = client_row(client_id)
    for name, value in columns.items():
        setattr(row, name, value)
    db.session.commit()


@pytest.fixture
def person(app):
    """A natural person 张三 with phone and e-mail, no address."""
    return make_account("natural", "zhang_san", email="zhangsan@example.cn")


@pytest.fixture
def unit(app):
    """A legal account (单位用户)."""
    return make_account("legal", "fz_unit", org_kind="enterprise")


@pytest.fixture
def issued(rp, make_client, person):
    """A trusted client's id and secret, and the tokens of one sign-in of ``person`` (openid
    profile)."""
    client_id, secret = make_client(trusted=True)
    return client_id, secret, rp.sign_in(client_id, secret, scope="openid profile")


# --- small helpers ---------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 §4."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic_auth(client_id: str, secret: str) -> dict:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def location(response) -> str:
    return response.headers.get("Location", "")


def query_of(url: str) -> dict:
    """Single-valued query parameters of a URL (asserting none is repeated)."""
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


def html(response) -> str:
    return response.get_data(as_text=True)


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert match, "no CSRF token on the page"
    return unescape(match.group(1))


def form_action(page: str, marker: str) -> str:
    """The action of the form that contains ``marker``."""
    for match in re.finditer(r"<form\b[^>]*>.*?</form>", page, re.S):
        if marker in match.group(0):
            action = re.search(r'action="([^"]*)"', match.group(0))
            assert action, "form without action"
            return unescape(action.group(1))
    raise AssertionError(f"no form containing {marker!r}")


def is_login_page(response) -> bool:
    return response.status_code == 200 and 'name="password"' in html(response)


def is_consent_page(response) -> bool:
    return response.status_code == 200 and 'name="consent"' in html(response)


def reason_of(response) -> str | None:
    match = re.search(r'data-reason="([^"]*)"', html(response))
    return match.group(1) if match else None


# --- the relying party -----------------------------------------------------------------------


@dataclass
class Flow:
    """What a finished authorization request produced."""

    response: object  # the final response: the redirect to the client (or a page)
    params: dict = field(default_factory=dict)  # code, state, iss or error …
    verifier: str | None = None
    pages: list = field(default_factory=list)  # "login", "consent" in the order shown

    @property
    def code(self) -> str:
        assert "code" in self.params, self.params
        return self.params["code"]


class RelyingParty:
    """A browser plus a relying party: the browser is a Flask test client with its cookies."""

    def __init__(self, app, browser, verify):
        self.app = app
        self.browser = browser
        self.verify_id_token = verify  # id_token_claims(token, client_id)

    # -- the authorization request ----------------------------------------------------------

    def authorize_url(self, client_id: str | None, **params) -> str:
        query = {"response_type": "code", "scope": "openid", "redirect_uri": REDIRECT_URI,
                 "state": secrets.token_urlsafe(8)}
        if client_id is not None:
            query["client_id"] = client_id
        query.update(params)
        return "/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})

    def get(self, url: str, **kwargs):
        return self.browser.get(url, **kwargs)

    def follow(self, response, *, login_name="zhang_san", password=PASSWORD, account_type="natural",
               consent: str | None = "allow", pages: list | None = None, stop_at_login=False):
        """Walk redirects, the login page and the consent page until the response leaves the
        provider (a redirect to another origin, a form_post page) or is a page we don't handle."""
        pages = pages if pages is not None else []
        for _ in range(12):
            if response.status_code in (301, 302, 303, 307):
                target = location(response)
                parts = urlsplit(target)
                if parts.netloc and parts.netloc != urlsplit(ISSUER).netloc:
                    return response
                response = self.browser.get(parts.path + ("?" + parts.query if parts.query else ""))
                continue
            if is_login_page(response):
                pages.append("login")
                if stop_at_login:
                    return response
                page = html(response)
                response = self.browser.post(form_action(page, 'name="password"'), data={
                    "csrf_token": csrf_from(page), "account_type": account_type,
                    "login_name": login_name, "password": password, "captcha": "",
                })
                assert response.status_code in (302, 303), (response.status_code, html(response)[:2000])
                continue
            if is_consent_page(response):
                pages.append("consent")
                if consent is None:
                    return response
                page = html(response)
                response = self.browser.post(form_action(page, 'name="consent"'), data={
                    "csrf_token": csrf_from(page), "consent": consent})
                continue
            return response
        raise AssertionError("too many steps in the authorization flow")

    def authorize(self, client_id, *, login_name="zhang_san", password=PASSWORD, account_type="natural",
                  consent="allow", pkce=False, **params) -> Flow:
        """One authorization request, followed to its end."""
        verifier = None
        if pkce:
            verifier, challenge = pkce_pair()
            params.setdefault("code_challenge", challenge)
            params.setdefault("code_challenge_method", "S256")
        pages: list = []
        response = self.follow(self.browser.get(self.authorize_url(client_id, **params)),
                               login_name=login_name, password=password, account_type=account_type,
                               consent=consent, pages=pages)
        flow = Flow(response=response, verifier=verifier, pages=pages)
        if response.status_code in (302, 303):
            flow.params = query_of(location(response))
        return flow

    # -- the token endpoint -----------------------------------------------------------------

    def token(self, client_id, secret, *, auth="basic", **data):
        data = {k: v for k, v in data.items() if v is not None}
        headers = {}
        if auth == "basic":
            headers = basic_auth(client_id, secret)
        elif auth == "post":
            data.update(client_id=client_id, client_secret=secret)
        elif auth == "none":
            data.update(client_id=client_id)
        return self.browser.post("/token", data=data, headers=headers)

    def redeem(self, client_id, secret, code, *, redirect_uri=REDIRECT_URI, code_verifier=None, auth="basic"):
        return self.token(client_id, secret, auth=auth, grant_type="authorization_code", code=code,
                          redirect_uri=redirect_uri, code_verifier=code_verifier)

    def refresh(self, client_id, secret, refresh_token, auth="basic", **data):
        return self.token(client_id, secret, auth=auth, grant_type="refresh_token",
                          refresh_token=refresh_token, **data)

    def sign_in(self, client_id, secret, *, auth="basic", **params) -> dict:
        """A whole code flow: the token response's JSON, plus ``flow`` and ``claims`` (the
        verified ID token)."""
        flow = self.authorize(client_id, **params)
        assert flow.response.status_code == 302, (flow.response.status_code, html(flow.response)[:2000])
        assert "code" in flow.params, flow.params
        response = self.redeem(client_id, secret, flow.code, code_verifier=flow.verifier, auth=auth)
        assert response.status_code == 200, response.get_json()
        tokens = response.get_json()
        tokens["flow"] = flow
        tokens["claims"] = self.verify_id_token(tokens["id_token"], client_id)
        return tokens

    def login(self, login_name="zhang_san", password=PASSWORD, account_type="natural"):
        """Sign in at the provider directly (no client involved)."""
        page = html(self.browser.get("/login"))
        response = self.browser.post("/login", data={
            "csrf_token": csrf_from(page), "account_type": account_type, "login_name": login_name,
            "password": password, "captcha": ""})
        assert response.status_code in (302, 303), html(response)[:2000]
        return response

    def userinfo(self, token, method="GET"):
        if method == "GET":
            return self.browser.get("/userinfo", headers=bearer(token))
        return self.browser.post("/userinfo", headers=bearer(token))

    def session(self) -> dict:
        from tests.conftest import session_data

        return session_data(self.app, self.browser)


def jwks_reader(app):
    """A function returning the published JWKS as PyJWK keys by kid (fetched afresh)."""
    reader = app.test_client()

    def load() -> dict:
        response = reader.get("/jwks.json")
        assert response.status_code == 200
        return {k["kid"]: jwt.PyJWK(k) for k in response.get_json()["keys"]}

    return load


def jwt_verifier(jwks, now):
    """Verify a JWT of the provider with PyJWT: the key by ``kid`` from /jwks.json, the
    algorithm from the header (RS256 or ES256 only — never ``none``), the audience and the
    issuer; times against the provider's clock (``now()``)."""

    def verify(token: str, audience: str, *, typ: str | None = None, require=("iss", "sub", "aud", "exp", "iat"),
               check_exp=True) -> dict:
        header = jwt.get_unverified_header(token)
        assert header["alg"] in ("RS256", "ES256"), header
        if typ is not None:
            assert header.get("typ") == typ, header
        keys = jwks()
        assert header.get("kid") in keys, "signed by a key that is not published"
        claims = jwt.decode(token, key=keys[header["kid"]], algorithms=[header["alg"]], audience=audience,
                            issuer=ISSUER, options={"require": list(require), "verify_exp": False,
                                                    "verify_iat": False, "verify_nbf": False})
        if check_exp:
            assert claims["exp"] > now(), "expired"
        assert claims["iat"] <= now() + 1
        return claims

    return verify


def id_token_verifier(verify):
    def check(token: str, client_id: str) -> dict:
        return verify(token, client_id, require=("iss", "sub", "aud", "exp", "iat", "auth_time"))

    return check


@pytest.fixture
def jwks(app):
    """The published JWKS as PyJWK keys by kid (fetched afresh on each call)."""
    return jwks_reader(app)


@pytest.fixture
def verify_jwt(jwks, clock):
    """``verify_jwt(token, audience, typ=…)``: PyJWT verification against /jwks.json."""
    return jwt_verifier(jwks, clock.time)


@pytest.fixture
def id_token_claims(verify_jwt):
    """``id_token_claims(token, client_id)``: the verified claims of an ID token."""

    return id_token_verifier(verify_jwt)


@pytest.fixture
def rp(app, client, id_token_claims) -> RelyingParty:
    return RelyingParty(app, client, id_token_claims)


def relying_party(app, clock) -> RelyingParty:
    """A browser plus relying party on its own test client, checking ID tokens with PyJWT: for
    suites outside tests/oidc whose ``client`` fixture is someone else's (the console's)."""
    return RelyingParty(app, app.test_client(), id_token_verifier(jwt_verifier(jwks_reader(app), clock.time)))


@pytest.fixture
def new_browser(app, id_token_claims):
    """Another browser (its own cookies) for the same provider."""

    def make() -> RelyingParty:
        return RelyingParty(app, app.test_client(), id_token_claims)

    return make


def decode_unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict:
    return jwt.get_unverified_header(token)


def b64json(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
