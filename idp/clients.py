"""The client registry: business systems as relying parties. Rules shared by the CLI, the
declaration files under clients/ and (later) the admin console.

Secrets are generated here, shown once, and stored only as hashes; declaration files never
hold secrets (a deployment supplies them through the environment or prints new ones).
"""

from __future__ import annotations

import hmac
import io
import os
import re
import secrets
import string
import tomllib
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import quote, urlsplit

from flask import current_app
from PIL import Image
from sqlalchemy import update as sql_update

from idp import signals
from idp.errors import Refused
from idp.extensions import db, services
from idp.models import like
from idp.models.clients import Client, hash_secret
from idp.models.staff import InitialAccessToken
from idp.oauth.claims import SCOPES_SUPPORTED
from idp.security import outbound

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
ACCOUNT_TYPES = ("natural", "legal")


class ClientError(Refused, ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason, field_name)


@dataclass
class ClientSpec:
    name: str
    redirect_uris: list[str] = field(default_factory=list)
    client_id: str | None = None
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scopes: list[str] = field(default_factory=lambda: ["openid"])
    allowed_account_types: list[str] = field(default_factory=lambda: list(ACCOUNT_TYPES))
    token_endpoint_auth_method: str = "client_secret_basic"
    trusted: bool = False
    # Only real-name verified users may sign in (others get a page that explains why).
    require_verified: bool = False
    logo_uri: str | None = None
    initiate_login_uri: str | None = None
    backchannel_logout_uri: str | None = None
    description: str | None = None


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_uri(uri: str, field_name: str) -> str:
    """Exact, absolute URIs: no wildcards, no fragments; https in production except loopback."""
    uri = (uri or "").strip()
    if not uri or len(uri) > 500 or any(c.isspace() for c in uri):
        raise ClientError(field_name, "invalid_uri")
    try:
        parts = urlsplit(uri)
    except ValueError:  # an unbalanced IPv6 bracket ("https://[::1/cb")
        raise ClientError(field_name, "invalid_uri") from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ClientError(field_name, "invalid_uri")
    if "*" in uri:
        raise ClientError(field_name, "wildcard_not_allowed")
    if parts.fragment or uri.endswith("#"):
        raise ClientError(field_name, "fragment_not_allowed")
    if parts.scheme == "http" and current_app.config["ENV"] == "production" and not _is_loopback(parts.hostname):
        raise ClientError(field_name, "https_required")
    return uri


def check_outbound_uri(uri: str, field_name: str) -> None:
    """A URI the provider will call (or, for self-registered clients, send users to) must pass
    the outbound rules (idp.security.outbound) when stored; the reason code is theirs
    (``loopback``, ``private``, ``link_local``, ``ambiguous_ip_address`` …). A name without DNS
    yet is accepted: it is checked again at every call."""
    try:
        outbound.check_stored(uri, outbound.Policy.from_config(current_app.config))
    except outbound.OutboundRefused as refused:
        error = ClientError(field_name, refused.reason)
        error.value = uri  # the console says which address is wrong
        raise error from None


def check_outbound_uris(spec: ClientSpec, names: tuple[str, ...], stored: Client | None = None) -> None:
    """``check_outbound_uri`` for these fields; with ``stored``, only the values that change."""
    for name in names:
        value = getattr(spec, name)
        if value and (stored is None or value != getattr(stored, name)):
            check_outbound_uri(value, name)
def origin(uri: str) -> tuple[str, str, int | None]:
    """RFC 6454 §4: scheme, host and port (the scheme's default when none is written)."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(
        parts.scheme.lower())


def _check_catalogue_origin(spec: ClientSpec) -> None:
    """The service catalogue links to ``initiate_login_uri`` (办理入口) under the platform's
    name: it must lead to the system the redirect URIs already name, never to another site
    (a self-registered client could otherwise publish a phishing page as a government
    service). Same origin, RFC 6454; a client without redirect URIs has no entry link."""
    if not spec.initiate_login_uri:
        return
    if origin(spec.initiate_login_uri) not in {origin(u) for u in spec.redirect_uris}:
        error = ClientError("initiate_login_uri", "initiate_login_uri_origin_mismatch")
        error.value = spec.initiate_login_uri
        raise error


def validate(spec: ClientSpec) -> ClientSpec:
    if not spec.name or len(spec.name) > 100:
        raise ClientError("name", "invalid_name")
    spec.redirect_uris = [check_uri(u, "redirect_uris") for u in spec.redirect_uris]
    spec.post_logout_redirect_uris = [check_uri(u, "post_logout_redirect_uris")
                                      for u in spec.post_logout_redirect_uris]
    for name in ("logo_uri", "initiate_login_uri", "backchannel_logout_uri"):
        if getattr(spec, name):
            setattr(spec, name, check_uri(getattr(spec, name), name))
    check_outbound_uris(spec, ("backchannel_logout_uri",))  # the provider calls it (a job)
    if "authorization_code" in spec.grant_types and not spec.redirect_uris:
        raise ClientError("redirect_uris", "redirect_uri_required")
    for grant in spec.grant_types:
        if grant not in GRANT_TYPES:
            raise ClientError("grant_types", "unsupported_grant_type")
    if spec.token_endpoint_auth_method not in AUTH_METHODS:
        raise ClientError("token_endpoint_auth_method", "unsupported_auth_method")
    if spec.token_endpoint_auth_method == "none" and "client_credentials" in spec.grant_types:  # nosec B105  # the "none" authentication method (RFC 7591), not a secret
        raise ClientError("grant_types", "public_client_credentials")
    for scope in spec.scopes:
        if scope not in SCOPES_SUPPORTED:
            raise ClientError("scopes", "unsupported_scope")
    if not spec.allowed_account_types or set(spec.allowed_account_types) - set(ACCOUNT_TYPES):
        raise ClientError("allowed_account_types", "invalid_account_types")
    spec.require_verified = bool(spec.require_verified)
    _check_catalogue_origin(spec)
    return spec


def _apply(client: Client, spec: ClientSpec) -> None:
    for name in ("name", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes",
                 "allowed_account_types", "token_endpoint_auth_method", "trusted", "require_verified", "logo_uri",
                 "initiate_login_uri", "backchannel_logout_uri", "description"):
        setattr(client, name, getattr(spec, name))


_CLIENT_ID_ALPHABET = string.ascii_letters + string.digits


def new_client_id() -> str:
    """Letters and digits only (143 bits): a client id that starts with "-" reads as an option on
    every command line it is pasted into."""
    return "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(24))


def find(client_id: str) -> Client | None:
    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


def create(spec: ClientSpec, secret: str | None = None, actor: str | None = None,
           approved: bool = True) -> tuple[Client, str | None]:
    """A new client and its secret in clear (None for public clients): shown once. Clients
    declared by staff (console, CLI, declaration files) are approved for the catalogue."""
    spec = validate(spec)
    if db.session.execute(db.select(Client.id).filter_by(name=spec.name)).first():
        raise ClientError("name", "duplicate_name")
    client_id = spec.client_id or new_client_id()
    if find(client_id) is not None:
        raise ClientError("client_id", "duplicate_client_id")
    client = Client(client_id=client_id, approved=approved)
    _apply(client, spec)
    if spec.token_endpoint_auth_method != "none":  # nosec B105  # the "none" authentication method (RFC 7591), not a secret
        secret = secret or secrets.token_urlsafe(32)
        client.secret_hash = hash_secret(secret)
    else:
        secret = None
    db.session.add(client)
    db.session.flush()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                details={"action": "created", "name": client.name})
    return client, secret


def update(client: Client, spec: ClientSpec, actor: str | None = None) -> Client:
    spec = validate(spec)
    clash = db.session.execute(db.select(Client.id).filter_by(name=spec.name)).scalar()
    if clash is not None and clash != client.id:
        raise ClientError("name", "duplicate_name")
    _apply(client, spec)
    db.session.flush()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                details={"action": "updated"})
    return client


def rotate_secret(client: Client, actor: str | None = None) -> str:
    """A new secret; the old one keeps working for the configured grace period."""
    secret = secrets.token_urlsafe(32)
    client.previous_secret_hash = client.secret_hash
    client.previous_secret_expires_at = services().clock.now() + timedelta(
        seconds=current_app.config["CLIENT_SECRET_GRACE"])
    client.secret_hash = hash_secret(secret)
    db.session.flush()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                details={"action": "secret_rotated"})
    return secret


# -- declaration files ------------------------------------------------------------------------

def load_declaration(path: str | Path, base_urls: dict[str, str] | None = None) -> ClientSpec:
    """One business system per TOML file (clients/*.toml). ``{base}`` in a URI is replaced by
    the system's base URL from ``base_urls`` (the demo runs them on loopback ports)."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    base = (base_urls or {}).get(data["client_id"], data.pop("base_url", ""))
    data.pop("base_url", None)

    def expand(value):
        if isinstance(value, str):
            return value.replace("{base}", base)
        if isinstance(value, list):
            return [expand(v) for v in value]
        return value

    return ClientSpec(**{k: expand(v) for k, v in data.items()})


def import_declaration(spec: ClientSpec, secret: str | None = None) -> tuple[Client, str | None]:
    """Create the client, or update it in place (keeping its secret) when it exists."""
    existing = find(spec.client_id) if spec.client_id else None
    if existing is None:
        return create(spec, secret)
    update(existing, spec)
    if secret:
        existing.secret_hash = hash_secret(secret)
        db.session.flush()
    return existing, secret


def catalogue(account_type: str) -> list[Client]:
    """服务事项 — 按用户: the systems serving this kind of user that can be entered from here;
    a self-registered system only once staff approved it."""
    rows = db.session.execute(
        db.select(Client).filter_by(enabled=True, approved=True).order_by(Client.id)).scalars()
    return [c for c in rows if account_type in c.allowed_account_types and c.initiate_login_uri]


# -- the staff console ------------------------------------------------------------------------
# Reason codes added here (ClientError.reason): logo_too_large, logo_not_an_image,
# logo_too_many_pixels, public_client_has_no_secret, invalid_validity_days, invalid_max_uses,
# description_too_long, unsupported_alg, auth_method_change_not_allowed,
# invalid_initial_access_token, initiate_login_uri_origin_mismatch, invalid_expires_in.

LOGO_MAX_BYTES = 1024 * 1024
LOGO_MAX_PIXELS = 4096 * 4096  # decompression bombs: refused before any pixel is decoded
LOGO_MAX_SIDE = 256
LOGO_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
_LOGO_FILE = re.compile(r"^[0-9a-f]{32}\.png$")

IAT_MAX_DAYS = 365
IAT_MAX_USES = 1000


def _check_naming_the_uri(uri: str, field_name: str) -> None:
    try:
        check_uri(uri, field_name)
    except ClientError as error:
        error.value = uri  # the console says which line is wrong
        raise


def check_spec(spec: ClientSpec) -> ClientSpec:
    """``validate``, but a URI error carries the offending URI in ``error.value``."""
    for name in ("redirect_uris", "post_logout_redirect_uris"):
        for uri in getattr(spec, name):
            _check_naming_the_uri(uri, name)
    for name in ("logo_uri", "initiate_login_uri", "backchannel_logout_uri"):
        if getattr(spec, name):
            _check_naming_the_uri(getattr(spec, name), name)
    return validate(spec)


def _name_taken(name: str, except_id: int | None = None) -> bool:
    clash = db.session.execute(db.select(Client.id).filter_by(name=name)).scalar()
    return clash is not None and clash != except_id


def search(name_contains: str | None = None) -> list[Client]:
    """Clients, newest first; a name filter is a plain substring (``%`` and ``_`` literal)."""
    query = db.select(Client).order_by(Client.created_at.desc(), Client.id.desc())
    text = (name_contains or "").strip()
    if text:
        query = query.where(like.contains(Client.name, text))
    return list(db.session.execute(query).scalars())


def prepare_logo(data: bytes) -> bytes:
    """An uploaded logo checked by its content (PNG, JPEG, GIF or WebP; at most 1 MB and
    4096 x 4096 pixels; complete) and re-encoded as a PNG of at most 256 pixels a side,
    without any metadata. Raises ClientError("logo", …)."""
    if len(data) > LOGO_MAX_BYTES:
        raise ClientError("logo", "logo_too_large")
    if not data:
        raise ClientError("logo", "logo_not_an_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as probe:
                if probe.width * probe.height > LOGO_MAX_PIXELS:
                    raise ClientError("logo", "logo_too_many_pixels")
                probe.verify()  # structure and checksums, without decoding
            with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as image:
                image.load()  # a truncated file fails here
                rgba = image.convert("RGBA") if image.mode != "CMYK" else image.convert("RGB").convert("RGBA")
    except ClientError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ClientError("logo", "logo_too_many_pixels") from None
    except Exception:  # noqa: BLE001 — any decoder complaint means "not a usable image"
        raise ClientError("logo", "logo_not_an_image") from None
    rgba.thumbnail((LOGO_MAX_SIDE, LOGO_MAX_SIDE), Image.Resampling.LANCZOS)
    clean = Image.frombytes("RGBA", rgba.size, rgba.tobytes())  # pixels only: no EXIF, ICC, text
    out = io.BytesIO()
    clean.save(out, "PNG", optimize=True)
    return out.getvalue()


def _logo_dir() -> Path:
    return Path(current_app.config["INSTANCE_DIR"]) / "uploads" / "logos"


def logo_path(client: Client) -> Path | None:
    """The stored logo file of a client (outside the web root), if it has one."""
    if not client.logo_file or not _LOGO_FILE.match(client.logo_file):
        return None
    path = _logo_dir() / client.logo_file
    return path if path.is_file() else None


def logo_url(client: Client) -> str:
    return f"{current_app.config['ISSUER']}/clients/{quote(client.client_id, safe='')}/logo.png"


def _store_logo(client: Client, png: bytes, actor: str | None) -> None:
    directory = _logo_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(16) + ".png"
    temporary = directory / (name + ".part")
    temporary.write_bytes(png)
    os.replace(temporary, directory / name)
    old = client.logo_file
    client.logo_file = name
    client.logo_uri = logo_url(client)
    db.session.flush()
    _remove_logo_file(old)
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                details={"action": "logo_changed"})


def _remove_logo_file(name: str | None) -> None:
    if name and _LOGO_FILE.match(name):
        (_logo_dir() / name).unlink(missing_ok=True)


def register(spec: ClientSpec, actor: str, logo: bytes | None = None) -> tuple[Client, str | None]:
    """A client registered in the console: the logo and the metadata are checked before
    anything is stored. Returns the client and its secret in clear (shown once)."""
    png = prepare_logo(logo) if logo is not None else None
    spec = check_spec(spec)
    client, secret = create(spec, actor=actor)
    if png is not None:
        _store_logo(client, png, actor)
    return client, secret


def edit(client: Client, spec: ClientSpec, actor: str, logo: bytes | None = None) -> str | None:
    """Change a client's metadata (and logo). A client that becomes confidential without a
    secret gets one (returned, shown once); one that becomes public loses its secrets."""
    png = prepare_logo(logo) if logo is not None else None
    spec = check_spec(spec)
    update(client, spec, actor=actor)
    secret = None
    if client.is_public and (client.secret_hash or client.previous_secret_hash):
        client.secret_hash = client.previous_secret_hash = client.previous_secret_expires_at = None
        db.session.flush()
    elif not client.is_public and client.secret_hash is None:
        secret = secrets.token_urlsafe(32)
        client.secret_hash = hash_secret(secret)
        db.session.flush()
        signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                    details={"action": "secret_issued"})
    if png is not None:
        _store_logo(client, png, actor)
    return secret


def rotate(client: Client, actor: str) -> str:
    """``rotate_secret`` for the console: a public client has no secret to rotate."""
    if client.is_public:
        raise ClientError("client", "public_client_has_no_secret")
    return rotate_secret(client, actor=actor)


def set_enabled(client: Client, enabled: bool, actor: str) -> None:
    """Disabling takes effect at once: the authorization and token endpoints look the
    client up on every request and refuse a disabled one, its commit cuts off every token it
    was issued (idp.oauth.storage), and its refresh tokens are revoked: enabling it again
    lets it sign users in anew, never revives what it held."""
    if client.enabled == enabled:
        return
    client.enabled = enabled
    db.session.flush()
    if not enabled:
        from idp.oauth import storage

        storage.revoke_client_tokens(client.client_id)
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                details={"action": "enabled" if enabled else "disabled"})


def approve(client: Client, actor: str) -> None:
    """Staff approve a self-registered client: the catalogue lists it with its entry link.
    Approval is about the catalogue only: the client signs users in (behind the consent
    page) before it, as Keycloak and node-oidc-provider let dynamically registered clients."""
    if client.approved:
        return
    client.approved = True
    db.session.flush()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id, actor=actor,
                                details={"action": "approved", "name": client.name})


def delete(client: Client, actor: str) -> None:
    """Remove a client with its users' consents, refresh tokens (their access tokens are
    revoked) and authorization codes, and its uploaded logo."""
    from idp.models.oauth import AuthorizationCode, Consent, RefreshToken
    from idp.oauth import storage

    client_id, name, logo = client.client_id, client.name, client.logo_file
    families = db.session.execute(
        db.select(RefreshToken.family_id).filter_by(client_id=client_id).distinct()).scalars().all()
    for family in families:
        storage.revoke_family(family)
    issued = db.session.execute(
        db.select(AuthorizationCode.issued_jti).filter_by(client_id=client_id)
        .where(AuthorizationCode.issued_jti.is_not(None))).scalars().all()
    for jti in issued:
        storage.revoke_access_jti(jti, current_app.config["ACCESS_TOKEN_TTL"])
    for model in (RefreshToken, Consent, AuthorizationCode):
        db.session.execute(db.delete(model).where(model.client_id == client_id))
    db.session.delete(client)
    db.session.flush()
    _remove_logo_file(logo)
    signals.client_changed.send(current_app._get_current_object(), subject=client_id, actor=actor,
                                details={"action": "deleted", "name": name})


# -- initial access tokens (RFC 7591 §3) ------------------------------------------------------

def issue_initial_access_token(description: str | None, validity_days: int, max_uses: int,
                               actor: str) -> tuple[InitialAccessToken, str]:
    """A token a business system presents to register itself; returned in clear once,
    stored as SHA-256."""
    if not isinstance(validity_days, int) or not 1 <= validity_days <= IAT_MAX_DAYS:
        raise ClientError("validity_days", "invalid_validity_days")
    return _issue_initial_access_token(description, validity_days * 86400, max_uses, actor)


def issue_initial_access_token_for_seconds(expires_in: int, actor: str) -> tuple[InitialAccessToken, str]:
    """``idp clients initial-token``: a single-use token (one registration per token, RFC 7591
    §3 leaves the count to the provider) valid ``expires_in`` seconds, at most a year."""
    if not isinstance(expires_in, int) or not 1 <= expires_in <= IAT_MAX_DAYS * 86400:
        raise ClientError("expires_in", "invalid_expires_in")
    return _issue_initial_access_token("idp clients initial-token", expires_in, 1, actor)


def _issue_initial_access_token(description: str | None, seconds: int, max_uses: int,
                                actor: str) -> tuple[InitialAccessToken, str]:
    description = (description or "").strip() or None
    if description is not None and len(description) > 200:
        raise ClientError("description", "description_too_long")
    if not isinstance(max_uses, int) or not 1 <= max_uses <= IAT_MAX_USES:
        raise ClientError("max_uses", "invalid_max_uses")
    token = secrets.token_urlsafe(32)
    row = InitialAccessToken(token_hash=hash_secret(token), description=description, created_by=actor,
                             expires_at=services().clock.now() + timedelta(seconds=seconds),
                             max_uses=max_uses, uses=0, revoked=False)
    db.session.add(row)
    db.session.flush()
    details = {"action": "initial_access_token_issued", "max_uses": max_uses}
    details.update({"validity_days": seconds // 86400} if seconds % 86400 == 0 else {"validity_seconds": seconds})
    signals.staff_action.send(current_app._get_current_object(), subject=f"initial_access_token:{row.id}",
                              actor=actor, details=details)
    return row, token


def initial_access_tokens() -> list[InitialAccessToken]:
    return list(db.session.execute(
        db.select(InitialAccessToken).order_by(InitialAccessToken.created_at.desc(),
                                               InitialAccessToken.id.desc())).scalars())


def initial_access_token_state(row: InitialAccessToken) -> str:
    """active, revoked, expired or used_up."""
    if row.revoked:
        return "revoked"
    if row.expires_at <= services().clock.now():
        return "expired"
    if row.uses >= row.max_uses:
        return "used_up"
    return "active"


def revoke_initial_access_token(row: InitialAccessToken, actor: str) -> None:
    if row.revoked:
        return
    row.revoked = True
    db.session.flush()
    signals.staff_action.send(current_app._get_current_object(), subject=f"initial_access_token:{row.id}",
                              actor=actor, details={"action": "initial_access_token_revoked"})


def usable_initial_access_token(value: str | None) -> InitialAccessToken | None:
    """The initial access token with this value if it may still register a client."""
    if not value or len(value) > 200:
        return None
    row = db.session.execute(
        db.select(InitialAccessToken).filter_by(token_hash=hash_secret(value))).scalar_one_or_none()
    return row if row is not None and initial_access_token_state(row) == "active" else None


def _spend_initial_access_token(row: InitialAccessToken) -> bool:
    """Count one use, atomically: of concurrent registrations only max_uses succeed."""
    spent = db.session.execute(
        sql_update(InitialAccessToken)
        .where(InitialAccessToken.id == row.id, InitialAccessToken.revoked.is_(False),
               InitialAccessToken.uses < InitialAccessToken.max_uses,
               InitialAccessToken.expires_at > services().clock.now())
        .values(uses=InitialAccessToken.uses + 1)
    ).rowcount
    db.session.flush()
    return bool(spent)


# -- dynamic client registration (RFC 7591) and its management (RFC 7592) ----------------------

# Never fetched by the provider (the browser follows them), but a self-registered client must
# not point users, or anything that might fetch a logo, at inside addresses either.
SELF_REGISTERED_OUTBOUND_URIS = ("logo_uri", "initiate_login_uri")


def _check_id_token_alg(alg: str | None) -> None:
    from idp.oauth.keys import ALGORITHMS

    if alg is not None and alg not in ALGORITHMS:
        raise ClientError("id_token_signed_response_alg", "unsupported_alg")


def register_dynamically(spec: ClientSpec, token: InitialAccessToken, client_id: str,
                         id_token_alg: str | None = None) -> tuple[Client, str | None, str]:
    """A client registered by a business system with an initial access token: never trusted.
    Everything is checked before the token's use is counted. Returns the client, its secret
    and its registration access token (RFC 7592), both in clear, shown once."""
    spec.trusted = False
    spec.client_id = client_id
    spec = validate(spec)
    check_outbound_uris(spec, SELF_REGISTERED_OUTBOUND_URIS)
    _check_id_token_alg(id_token_alg)
    if _name_taken(spec.name):
        raise ClientError("name", "duplicate_name")
    if find(client_id) is not None:
        raise ClientError("client_id", "duplicate_client_id")
    if not _spend_initial_access_token(token):
        raise ClientError("initial_access_token", "invalid_initial_access_token")
    # Not in the catalogue until staff approve it (issue 12): the entry link would carry the
    # platform's name to a site nobody has looked at.
    client, secret = create(spec, actor=f"initial_access_token:{token.id}", approved=False)
    registration_token = secrets.token_urlsafe(32)
    client.registration_access_token_hash = hash_secret(registration_token)
    client.registered_dynamically = True
    client.id_token_signed_response_alg = id_token_alg
    db.session.flush()
    return client, secret, registration_token


def client_for_registration_token(client_id: str | None, token: str | None) -> Client | None:
    """The client at this configuration URI if the token is its registration access token."""
    if not client_id or not token or len(client_id) > 64 or len(token) > 200:
        return None
    client = find(client_id)
    if client is None or not client.registration_access_token_hash:
        return None
    if not hmac.compare_digest(hash_secret(token), client.registration_access_token_hash):
        return None
    return client


# What staff looked at when they approved a client for the catalogue.
CATALOGUE_FIELDS = ("name", "redirect_uris", "initiate_login_uri", "logo_uri", "allowed_account_types")


def update_dynamically(client: Client, spec: ClientSpec, id_token_alg: str | None = None) -> Client:
    """RFC 7592 §2.2: the metadata sent replaces the registered metadata. What staff set
    (trusted, description, an uploaded logo) stays; the authentication method cannot change
    (a confidential client would need a new secret, a public one would keep a useless one).
    A change of what the catalogue shows or links to takes an approved client out of the
    catalogue until staff approve it again (else approval of a harmless entry would carry
    over to any site)."""
    if spec.token_endpoint_auth_method != client.token_endpoint_auth_method:
        raise ClientError("token_endpoint_auth_method", "auth_method_change_not_allowed")
    _check_id_token_alg(id_token_alg)
    check_outbound_uris(spec, SELF_REGISTERED_OUTBOUND_URIS, stored=client)
    spec.trusted = client.trusted
    spec.require_verified = client.require_verified
    spec.description = client.description
    if not spec.logo_uri and client.logo_file:
        spec.logo_uri = client.logo_uri
    spec = validate(spec)
    withdrawn = client.approved and any(getattr(spec, f) != getattr(client, f) for f in CATALOGUE_FIELDS)
    if withdrawn:
        client.approved = False
    update(client, spec, actor=f"client:{client.client_id}")  # a ClientError: the request rolls back
    client.id_token_signed_response_alg = id_token_alg
    db.session.flush()
    if withdrawn:
        signals.client_changed.send(current_app._get_current_object(), subject=client.client_id,
                                    actor=f"client:{client.client_id}", details={"action": "approval_withdrawn"})
    return client
