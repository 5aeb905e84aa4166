"""Business systems registered as OpenID Connect relying parties."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models.types import UTCDateTime, utcnow


def hash_secret(secret: str) -> str:
    """Client secrets are high-entropy random strings: SHA-256 is enough to keep them
    unusable if the table leaks, and keeps the token endpoint fast."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Client(db.Model, ClientMixin):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    # The secret replaced by a rotation stays valid until this time (grace period).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40), default="client_secret_basic")
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=lambda: ["authorization_code", "refresh_token"])
    response_types: Mapped[list] = mapped_column(JSON, default=lambda: ["code"])
    scopes: Mapped[list] = mapped_column(JSON, default=lambda: ["openid"])
    allowed_account_types: Mapped[list] = mapped_column(JSON, default=lambda: ["natural", "legal"])
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Only real-name verified users may sign in; others get a page that explains why.
    require_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    logo_uri: Mapped[str | None] = mapped_column(String(500))
    initiate_login_uri: Mapped[str | None] = mapped_column(String(500))
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    jwks: Mapped[dict | None] = mapped_column(JSON)  # for private_key_jwt
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text)
    # RFC 7592: clients registered dynamically manage themselves with this token (hash).
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64))
    registered_dynamically: Mapped[bool] = mapped_column(Boolean, default=False)
    # Listed in the service catalogue (with its entry link) only when approved: a client that
    # registered itself (RFC 7591) waits for staff; every other client is approved when created.
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    logo_file: Mapped[str | None] = mapped_column(String(100))  # uploaded logo, served by /clients/<id>/logo.png
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # -- Authlib ClientMixin ---------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3: only one registered URI may stand in for a missing parameter.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.scopes)
        # RFC 6749 §3.3: the scope is a set; a repeated token is granted once.
        return " ".join(dict.fromkeys(s for s in scope_to_list(scope) if s in allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison: no case folding, no trailing-slash or fragment leniency.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        given = hash_secret(client_secret)
        if self.secret_hash and hmac.compare_digest(given, self.secret_hash):
            return True
        if self.previous_secret_hash and self.previous_secret_expires_at:
            from idp.extensions import services

            if services().clock.now() < self.previous_secret_expires_at:
                return hmac.compare_digest(given, self.previous_secret_hash)
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.token_endpoint_auth_method
        # Introspection and revocation: any method the client can prove.
        return method == self.token_endpoint_auth_method or (
            self.is_public and method == "none"
        )

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def client_metadata(self) -> dict:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris or [])}

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # nosec B105  # the "none" authentication method (RFC 7591), not a secret

    def allows_account_type(self, account_type: str) -> bool:
        return account_type in self.allowed_account_types
