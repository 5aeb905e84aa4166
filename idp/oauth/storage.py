"""Every storage hook of the authorization server, in one module, so that grant classes hold
only policy (ARCHITECTURE.md). Codes and refresh tokens are stored as SHA-256 hashes; access
tokens are JWTs, revoked through a list that lives as long as they do (idp.oauth.revocations).

Every use of a credential checks that its account and its client are still live: a code or a
refresh token is spent only for an active account (its status comes back with the spending
statement), a client is found only while enabled (``query_client``), and nothing issued at or
before an account's or client's cut-off is accepted (``cut_off_account``, ``cut_off_client``,
``issued_before_cut_off``) — a disabled, staff-locked or deleted account, a disabled or deleted
client, whatever token it holds and however it was issued.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta, timezone

from flask import current_app
from sqlalchemy import bindparam, insert, inspect, select, update
from sqlalchemy.orm import load_only

from idp import signals
from idp.extensions import db, services
from idp.login.record import Authentication
from idp.models import changes
from idp.models.accounts import ACTIVE, Account
from idp.models.clients import Client
from idp.models.oauth import AuthorizationCode, Consent, RefreshToken
from idp.security import cut_offs
from idp.security.cut_offs import cut_off_account, cut_off_client, issued_before_cut_off  # noqa: F401
from idp.security.cut_offs import represents_ended

# Hot-path writes go to the tables (SQL Core): the ORM's unit of work for one row cost more
# than the statement (bench/PROFILE.md). The ORM objects read before are not refreshed.
_REFRESH_TOKENS = RefreshToken.__table__
_CODES = AuthorizationCode.__table__
_ACCOUNTS = Account.__table__


def _subject_status(table):
    """The status of the account a row belongs to, as a subquery (its ``sub`` and type come
    with the row, in its authentication record): SQLite's RETURNING (3.35 and later) may not
    name a joined table. SQLite is given the subquery's columns without table names (``WHERE
    id = account_id``), which is right while ``accounts`` has no column named like one of
    ``table``'s that it compares."""
    owner = _ACCOUNTS.c.id == table.c.account_id
    return select(_ACCOUNTS.c.status).where(owner).correlate(table).scalar_subquery().label("subject_status")


# A code or refresh token is spent by one statement that marks it used and returns it with its
# user: the first use wins (a concurrent second use waits for the row, then finds it spent),
# and the usual case costs one round trip. Only when nothing was spent is the row read, to
# tell a replay (which revokes what the first use issued) from an unknown value. Statements
# are built once, and take their values as parameters: values embedded in a statement made
# SQLAlchemy compute a new cache key at every execution. A code's statement also records the
# access token and refresh-token family that its exchange will issue (chosen before), so that a
# replay can revoke them without a second write.
_SPEND_CODE = (update(_CODES)
               .where(_CODES.c.code_hash == bindparam("hash"), _CODES.c.client_id == bindparam("for_client"),
                      _CODES.c.used_at.is_(None))
               .values(used_at=bindparam("now"), issued_jti=bindparam("jti"), issued_family=bindparam("family"))
               .returning(*_CODES.c, _subject_status(_CODES)))
_SPEND_REFRESH_TOKEN = (update(_REFRESH_TOKENS)
                        .where(_REFRESH_TOKENS.c.token_hash == bindparam("hash"),
                               _REFRESH_TOKENS.c.client_id == bindparam("for_client"),
                               _REFRESH_TOKENS.c.rotated_at.is_(None), _REFRESH_TOKENS.c.revoked_at.is_(None),
                               _REFRESH_TOKENS.c.expires_at > bindparam("now"))
                        .values(rotated_at=bindparam("now"))
                        .returning(*_REFRESH_TOKENS.c, _subject_status(_REFRESH_TOKENS)))
# Read as stored now, over any copy the session holds: a replayed code must see what its first
# use issued, committed after that copy was loaded.
_CODE_BY_HASH = (select(AuthorizationCode).where(AuthorizationCode.code_hash == bindparam("hash"))
                 .execution_options(populate_existing=True))
_REFRESH_TOKEN_BY_HASH = select(RefreshToken).where(RefreshToken.token_hash == bindparam("hash"))
_INSERT_REFRESH_TOKEN = insert(_REFRESH_TOKENS)
_INSERT_CODE = insert(_CODES)


@dataclass(frozen=True)
class Grantee:
    """Whom a grant is for, as Authlib carries it (``request.user``): the account's row id for
    the rows that record what was issued, and the sign-in's record, the only source of the
    tokens' claims about the user and the sign-in. ``access_jti``: the ``jti`` its access token
    must carry, when it was chosen and recorded before the token was made (a code's exchange);
    ``status``: the account's, as the spending statement read it."""

    id: int
    authentication: Authentication
    access_jti: str | None = None
    status: str | None = None

    @property
    def sub(self) -> str:
        return self.authentication.sub

    @property
    def account_type(self) -> str:
        return self.authentication.account_type


def _spent(model, found, access_jti: str | None = None):
    """A row of ``model`` just spent by one of the statements above, as a detached object
    with its ``subject`` attached (it never loads, and no session writes it back)."""
    if found is None:
        return None
    values = found._mapping
    row = model(**{column.key: values[column.key] for column in model.__table__.c})
    row.subject = Grantee(row.account_id, Authentication.from_json(row.authentication), access_jti,
                          values["subject_status"])
    return row


def _live(row, issued_at: float) -> bool:
    """A code or refresh token just spent may be used: its account is active (a deleted one
    reads as None) and neither the account nor the client was cut off after it was issued."""
    subject = row.subject
    return (subject.status == ACTIVE
            and not issued_before_cut_off(subject.sub, row.client_id, issued_at, whole_seconds=False)
            and delegation_holds(row, issued_at))


def delegation_holds(row, issued_at: float | None = None) -> bool:
    """A code or refresh token issued while acting for a unit (``represents`` in its sign-in's
    record) may be used only while that authorisation holds: not cut off since ``issued_at``
    (revoked, declined, changed; its unit unverified or disabled), still active, for this
    client, with the validity the tokens state (idp.delegations.service.still_holds: one
    query, only for such tokens). A revocation racing a refresh: whichever commits first, the
    refresh loses, since the revocation's cut-off is written after its commit and covers
    whatever the refresh issued before it."""
    represents = (row.authentication or {}).get("represents")
    if not represents:
        return True
    from idp.delegations.service import still_holds

    if issued_at is not None and represents_ended(represents, issued_at, whole_seconds=False):
        return False
    return still_holds(represents, row.client_id)


def _timestamp(moment) -> float:
    return moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_jti() -> str:
    """An access token's ``jti``: random, so that no two tokens are ever identical."""
    return secrets.token_urlsafe(16)


def new_family() -> str:
    return secrets.token_hex(16)


def unverified_claims(jwt_token: str) -> dict:
    """Claims of a JWT this provider has just made itself (no security decision rests on it)."""
    payload = jwt_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# -- clients ----------------------------------------------------------------------------------

def query_client(client_id: str | None) -> Client | None:
    """The enabled client (a cached, detached copy: idp.oauth.client_cache). Another process may
    have disabled it a moment ago, before this one's cache heard of it: a copy older than the
    client's cut-off (heard at once through the revocation list) is checked against the row."""
    if not client_id or len(client_id) > 64:
        return None
    client = current_app.extensions["idp.client_cache"].get(client_id, _client_row)
    if client is not None:
        cut = services().revocations.cut_off_at(cut_offs.CLIENT + client_id)
        if cut is not None and cut >= client.cached_at:
            row = _client_row(client_id)
            if row is None or not row.enabled:
                return None
    return client


def _client_row(client_id: str) -> Client | None:
    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


@functools.lru_cache(maxsize=64)
def _account_by_sub_query(columns: tuple[str, ...]):
    """Made once per column set: building the query and its load option cost more than running it."""
    query = db.select(Account).where(Account.sub == bindparam("sub"))
    return query.options(load_only(*(getattr(Account, name) for name in columns))) if columns else query


def account_by_id(account_id) -> Account | None:
    return db.session.get(Account, account_id) if account_id else None


def account_by_sub(sub: str | None, columns: list[str] | None = None) -> Account | None:
    """The account, with only ``columns`` loaded when given (others load when first read)."""
    if not sub:
        return None
    query = _account_by_sub_query(tuple(columns or ()))
    return db.session.execute(query, {"sub": sub}).scalar_one_or_none()


# -- authorization codes ----------------------------------------------------------------------

def save_code(code: str, request, grantee: Grantee) -> None:
    data = request.payload.data
    now = services().clock.now()
    db.session.execute(_INSERT_CODE, {
        "code_hash": token_hash(code),
        "client_id": request.client.get_client_id(),
        "account_id": grantee.id,
        "redirect_uri": request.payload.redirect_uri or request.client.get_default_redirect_uri(),
        "scope": request.scope or "",
        "nonce": data.get("nonce"),
        "authentication": grantee.authentication.as_json(),
        "sid": grantee.authentication.sid,
        "code_challenge": data.get("code_challenge"),
        "code_challenge_method": data.get("code_challenge_method"),
        "expires_at": now + timedelta(seconds=current_app.config["CODE_TTL"]),
    })  # committed by the authorization endpoint, with the SSO session it joins


def take_code(code: str, client: Client) -> AuthorizationCode | None:
    """Spend a code atomically (committed with the tokens by the token endpoint, also when the
    request fails afterwards: a code works once). A code presented a second time by its client
    revokes what it issued."""
    now = services().clock.now()
    params = {"hash": token_hash(code or ""), "for_client": client.get_client_id(), "now": now,
              "jti": new_jti(), "family": new_family()}
    row = _spent(AuthorizationCode, db.session.execute(_SPEND_CODE, params).first(), params["jti"])
    if row is None:
        known = db.session.execute(_CODE_BY_HASH, {"hash": params["hash"]}).scalar_one_or_none()
        if known is not None and known.client_id == params["for_client"] and known.used_at is not None:
            revoke_code_grant(known)
        return None
    if row.expires_at <= now or not _live(row, _timestamp(row.expires_at) - current_app.config["CODE_TTL"]):
        return None
    return row


def revoke_code_grant(row: AuthorizationCode) -> None:
    if row.issued_jti:
        revoke_access_jti(row.issued_jti, current_app.config["ACCESS_TOKEN_TTL"])
    if row.issued_family:
        revoke_family(row.issued_family)
    signals.token_revoked.send(current_app._get_current_object(), subject=row.client_id,
                               outcome="success", details={"reason": "code_replayed"})


def nonce_used(client_id: str, nonce: str) -> bool:
    return db.session.execute(
        db.select(AuthorizationCode.id).filter_by(client_id=client_id, nonce=nonce).limit(1)
    ).first() is not None


# -- tokens -----------------------------------------------------------------------------------

def save_token(token: dict, request) -> None:
    """Record a refresh token: of its parent's family, of the family its code recorded, or of
    a new one. The token endpoint commits it, with the spent code or the rotated parent, in one
    transaction. Client credentials leave nothing to record."""
    if not token.get("refresh_token"):
        return
    claims = unverified_claims(token["access_token"])
    code = getattr(request, "authorization_code", None)
    parent = getattr(request, "refresh_token", None)
    source = parent if parent is not None else code
    db.session.execute(_INSERT_REFRESH_TOKEN, {
        "token_hash": token_hash(token["refresh_token"]),
        "family_id": parent.family_id if parent is not None else getattr(code, "issued_family", None) or new_family(),
        "client_id": request.client.get_client_id(),
        "account_id": request.user.id,
        "scope": token.get("scope", ""),
        "sid": source.sid,
        "authentication": source.authentication,  # the sign-in the grant came from, unchanged
        "access_jti": claims["jti"],
        "access_expires_at": claims["exp"],
        "expires_at": services().clock.now() + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"]),
    })


def spend_refresh_token(value: str, client: Client) -> RefreshToken | None:
    """The client's usable refresh token, marked rotated in the same statement: of two
    concurrent uses only one gets it. Presenting a rotated or revoked one revokes its family
    (the token issued at its rotation included). The token endpoint commits the rotation with
    the new token, or rolls it back when the request fails (idp.oauth.server.RefreshTokenGrant)."""
    now = services().clock.now()
    params = {"hash": token_hash(value or ""), "for_client": client.get_client_id(), "now": now}
    row = _spent(RefreshToken, db.session.execute(_SPEND_REFRESH_TOKEN, params).first())
    if row is not None:
        # Issued by the provider's clock (``save_token``), as the cut-offs are.
        issued_at = _timestamp(row.expires_at) - current_app.config["REFRESH_TOKEN_TTL"]
        return row if _live(row, issued_at) else None
    known = db.session.execute(_REFRESH_TOKEN_BY_HASH, {"hash": params["hash"]}).scalar_one_or_none()
    if known is not None and (known.rotated_at is not None or known.revoked_at is not None):
        revoke_family(known.family_id)
        signals.token_revoked.send(current_app._get_current_object(), subject=known.client_id,
                                   outcome="success", details={"reason": "refresh_token_replayed"})
    return None


def revoke_family(family_id: str) -> None:
    now = services().clock.now()
    rows = db.session.execute(db.select(RefreshToken).filter_by(family_id=family_id)).scalars().all()
    for row in rows:
        if row.revoked_at is None:
            row.revoked_at = now
        if row.access_jti and row.access_expires_at:
            revoke_access_jti(row.access_jti, row.access_expires_at - services().clock.time())
    db.session.flush()


# -- cut-offs: the end of every credential of an account or a client ------------------------

# The cut-offs are kept in idp.security.cut_offs (the browser session's check needs them too).


def revoke_client_tokens(client_id: str) -> None:
    """End every refresh-token family of a client (and the access tokens they issued)."""
    families = db.session.execute(db.select(RefreshToken.family_id).filter_by(client_id=client_id)
                                  .where(RefreshToken.revoked_at.is_(None)).distinct()).scalars().all()
    for family in families:
        revoke_family(family)


def _sub_if_account_ends(account: Account) -> str | None:
    """The ``sub`` of an account deleted, or whose status left ``active``, in this commit."""
    state = inspect(account)
    if state.session is not None and account in state.session.deleted:
        return account.sub
    if "status" in state.committed_state and account.status != ACTIVE:
        return account.sub
    return None


def _accounts_ended(subs: set) -> None:
    for sub in subs - {None}:
        cut_off_account(sub)


def _id_if_client_ends(client: Client) -> str | None:
    state = inspect(client)
    if state.session is not None and client in state.session.deleted:
        return client.client_id
    if "enabled" in state.committed_state and not client.enabled:
        return client.client_id
    return None


def _clients_ended(client_ids: set) -> None:
    for client_id in client_ids - {None}:
        cut_off_client(client_id)


# Whatever ends an account or a client (the console, the CLI, a service, a script), the cut-off
# follows its commit at once.
changes.after_commit_of(Account, _sub_if_account_ends, _accounts_ended)
changes.after_commit_of(Client, _id_if_client_ends, _clients_ended)


def revoke_access_jti(jti: str, ttl: float) -> None:
    """``ttl``: how long the token still lives (idp.oauth.revocations)."""
    services().revocations.revoke(jti, ttl)


def access_jti_revoked(jti: str) -> bool:
    return services().revocations.is_revoked(jti)


def revoke_account_tokens(account_id: int, client_id: str | None = None, sid: str | None = None) -> None:
    """End the refresh-token families of an account (for one client or one session)."""
    query = db.select(RefreshToken.family_id).filter_by(account_id=account_id).where(
        RefreshToken.revoked_at.is_(None))
    if client_id:
        query = query.filter_by(client_id=client_id)
    if sid:
        query = query.filter_by(sid=sid)
    for family in set(db.session.execute(query).scalars()):
        revoke_family(family)


# -- consent ----------------------------------------------------------------------------------

def consent_covers(account_id: int, client_id: str, scopes: list[str]) -> bool:
    row = db.session.execute(
        db.select(Consent).filter_by(account_id=account_id, client_id=client_id)
    ).scalar_one_or_none()
    return row is not None and set(scopes) <= set(row.scopes)


def remember_consent(account_id: int, client_id: str, scopes: list[str]) -> None:
    row = db.session.execute(
        db.select(Consent).filter_by(account_id=account_id, client_id=client_id)
    ).scalar_one_or_none()
    if row is None:
        db.session.add(Consent(account_id=account_id, client_id=client_id, scopes=sorted(set(scopes))))
    else:
        row.scopes = sorted(set(row.scopes) | set(scopes))
        row.granted_at = services().clock.now()
    db.session.flush()


def revoke_consent(account_id: int, client_id: str) -> bool:
    row = db.session.execute(
        db.select(Consent).filter_by(account_id=account_id, client_id=client_id)
    ).scalar_one_or_none()
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    revoke_account_tokens(account_id, client_id=client_id)
    return True
