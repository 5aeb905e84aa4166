"""Protocol state kept in the database: codes, refresh-token families, consents, signing keys,
single sign-on sessions and the durable job queue (back-channel logout deliveries)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models.types import Encrypted, UTCDateTime, utcnow


class AuthorizationCode(db.Model):
    """Single-use, short-lived, bound to client, redirect URI and PKCE challenge (RFC 6749
    §4.1.2, RFC 7636). Only a hash of the code is stored. Tokens issued for it are recorded so
    that a replayed code can revoke them (RFC 6749 §4.1.2: "SHOULD revoke")."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(String(255))
    # The sign-in it was issued in (idp.login.record.Authentication), whole: the only source of
    # the ID token's and the access token's sign-in claims.
    authentication: Mapped[dict] = mapped_column(JSON)
    sid: Mapped[str | None] = mapped_column(String(64))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    claims_extra: Mapped[dict | None] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_jti: Mapped[str | None] = mapped_column(String(64))
    issued_family: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Authlib AuthorizationCodeMixin / OIDC AuthorizationCodeMixin
    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.authentication["auth_time"]

    def get_acr(self):
        # Derived from amr, not stored: the record the spent code carries (idp.oauth.storage).
        return self.subject.authentication.acr

    def get_amr(self):
        return self.authentication["amr"]


class RefreshToken(db.Model):
    """Rotating refresh tokens: each use issues a new one in the same family; presenting a
    rotated one again revokes the whole family (OAuth 2.0 Security BCP §4.14)."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),
                      Index("ix_refresh_tokens_account", "account_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    sid: Mapped[str | None] = mapped_column(String(64))
    # The sign-in the family was granted in, copied from the code to every rotation unchanged.
    authentication: Mapped[dict] = mapped_column(JSON)
    access_jti: Mapped[str | None] = mapped_column(String(64))
    access_expires_at: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Authlib TokenMixin
    def get_scope(self):
        return self.scope

    def check_client(self, client):
        return self.client_id == client.get_client_id()

    def is_revoked(self):
        return self.revoked_at is not None or self.rotated_at is not None

    def is_expired(self):
        from idp.extensions import services

        return self.expires_at <= services().clock.now()


class Consent(db.Model):
    """What a user allowed a client to receive, remembered until revoked (我的授权应用)."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("account_id", "client_id", name="uq_consents_account_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SigningKey(db.Model):
    """ID-token and access-token signing keys; the private part is encrypted like personal
    data. Retired keys stay published until every token they signed has expired."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(10))
    private_jwk: Mapped[str] = mapped_column(Encrypted("signing_keys.private_jwk"))
    public_jwk: Mapped[dict] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # After this time no token signed by the key is still valid: it leaves the JWKS.
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SsoSession(db.Model):
    """A sign-in at the provider (OIDC ``sid``): which clients took part, for single logout,
    and what the user centre lists and lets the user end."""

    __tablename__ = "sso_sessions"
    __table_args__ = (Index("ix_sso_sessions_account", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    # The server-side session that carries it, so ending it here ends the browser session.
    session_key: Mapped[str | None] = mapped_column(String(100))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_ids: Mapped[list] = mapped_column(JSON, default=list)
    authentication: Mapped[dict | None] = mapped_column(JSON)  # the sign-in (idp.login.record)
    user_agent: Mapped[str | None] = mapped_column(String(300))
    client_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(db.Model):
    """The durable queue run by ``idp worker`` (back-channel logouts, notices, verification
    retries; idp/jobs.py)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "done_at", "run_after"), Index("ix_jobs_about", "kind", "about"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    # JSON of what the job needs but must not keep in clear (a recipient, a temporary password):
    # encrypted, loaded only when the job runs (a value that no longer decrypts fails that job,
    # not the queue), emptied once the job is done or failed.
    sealed: Mapped[str | None] = mapped_column(Encrypted("jobs.sealed"), deferred=True)
    # Jobs of one kind about one thing replace one another (idp.jobs, "about").
    about: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
