"""The client registry: business systems as relying parties. Rules shared by the CLI, the
declaration files under clients/ and (later) the admin console.

Secrets are generated here, shown once, and stored only as hashes; declaration files never
hold secrets (a deployment supplies them through the environment or prints new ones).
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app

from idp import signals
from idp.extensions import db, services
from idp.models.clients import Client, hash_secret
from idp.oauth.claims import SCOPES_SUPPORTED

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
ACCOUNT_TYPES = ("natural", "legal")


class ClientError(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


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
    parts = urlsplit(uri)
    if not uri or len(uri) > 500 or any(c.isspace() for c in uri):
        raise ClientError(field_name, "invalid_uri")
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ClientError(field_name, "invalid_uri")
    if "*" in uri:
        raise ClientError(field_name, "wildcard_not_allowed")
    if parts.fragment or uri.endswith("#"):
        raise ClientError(field_name, "fragment_not_allowed")
    if parts.scheme == "http" and current_app.config["ENV"] == "production" and not _is_loopback(parts.hostname):
        raise ClientError(field_name, "https_required")
    return uri


def validate(spec: ClientSpec) -> ClientSpec:
    if not spec.name or len(spec.name) > 100:
        raise ClientError("name", "invalid_name")
    spec.redirect_uris = [check_uri(u, "redirect_uris") for u in spec.redirect_uris]
    spec.post_logout_redirect_uris = [check_uri(u, "post_logout_redirect_uris")
                                      for u in spec.post_logout_redirect_uris]
    for name in ("logo_uri", "initiate_login_uri", "backchannel_logout_uri"):
        if getattr(spec, name):
            setattr(spec, name, check_uri(getattr(spec, name), name))
    if "authorization_code" in spec.grant_types and not spec.redirect_uris:
        raise ClientError("redirect_uris", "redirect_uri_required")
    for grant in spec.grant_types:
        if grant not in GRANT_TYPES:
            raise ClientError("grant_types", "unsupported_grant_type")
    if spec.token_endpoint_auth_method not in AUTH_METHODS:
        raise ClientError("token_endpoint_auth_method", "unsupported_auth_method")
    if spec.token_endpoint_auth_method == "none" and "client_credentials" in spec.grant_types:
        raise ClientError("grant_types", "public_client_credentials")
    for scope in spec.scopes:
        if scope not in SCOPES_SUPPORTED:
            raise ClientError("scopes", "unsupported_scope")
    if not spec.allowed_account_types or set(spec.allowed_account_types) - set(ACCOUNT_TYPES):
        raise ClientError("allowed_account_types", "invalid_account_types")
    return spec


def _apply(client: Client, spec: ClientSpec) -> None:
    for name in ("name", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes",
                 "allowed_account_types", "token_endpoint_auth_method", "trusted", "logo_uri",
                 "initiate_login_uri", "backchannel_logout_uri", "description"):
        setattr(client, name, getattr(spec, name))


def find(client_id: str) -> Client | None:
    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


def create(spec: ClientSpec, secret: str | None = None) -> tuple[Client, str | None]:
    """A new client and its secret in clear (None for public clients): shown once."""
    spec = validate(spec)
    if db.session.execute(db.select(Client.id).filter_by(name=spec.name)).first():
        raise ClientError("name", "duplicate_name")
    client_id = spec.client_id or secrets.token_urlsafe(18)
    if find(client_id) is not None:
        raise ClientError("client_id", "duplicate_client_id")
    client = Client(client_id=client_id)
    _apply(client, spec)
    if spec.token_endpoint_auth_method != "none":
        secret = secret or secrets.token_urlsafe(32)
        client.secret_hash = hash_secret(secret)
    else:
        secret = None
    db.session.add(client)
    db.session.commit()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id,
                                details={"action": "created", "name": client.name})
    return client, secret


def update(client: Client, spec: ClientSpec) -> Client:
    spec = validate(spec)
    clash = db.session.execute(db.select(Client.id).filter_by(name=spec.name)).scalar()
    if clash is not None and clash != client.id:
        raise ClientError("name", "duplicate_name")
    _apply(client, spec)
    db.session.commit()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id,
                                details={"action": "updated"})
    return client


def rotate_secret(client: Client) -> str:
    """A new secret; the old one keeps working for the configured grace period."""
    secret = secrets.token_urlsafe(32)
    client.previous_secret_hash = client.secret_hash
    client.previous_secret_expires_at = services().clock.now() + timedelta(
        seconds=current_app.config["CLIENT_SECRET_GRACE"])
    client.secret_hash = hash_secret(secret)
    db.session.commit()
    signals.client_changed.send(current_app._get_current_object(), subject=client.client_id,
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
        db.session.commit()
    return existing, secret


def catalogue(account_type: str) -> list[Client]:
    """服务事项 — 按用户: the systems serving this kind of user that can be entered from here."""
    rows = db.session.execute(db.select(Client).filter_by(enabled=True).order_by(Client.id)).scalars()
    return [c for c in rows if account_type in c.allowed_account_types and c.initiate_login_uri]
