"""Single sign-on sessions: created at sign-in, joined by every client that gets a code,
ended by logout (here or RP-initiated) or from the user centre — which notifies the clients
by back-channel logout and ends their refresh tokens."""

from __future__ import annotations

from flask import current_app, g, request, session
from sqlalchemy import bindparam, insert, select, update

from idp import signals
from idp.extensions import db, services
from idp.models.oauth import SsoSession
from idp.oauth import backchannel, storage


# Every sign-in writes a session and every authorization response joins one: prebuilt
# statements, not ORM objects (bench/PROFILE.md).
_SESSIONS = SsoSession.__table__
_INSERT_SESSION = insert(_SESSIONS)
_CLIENTS_OF_SESSION = select(_SESSIONS.c.client_ids).where(_SESSIONS.c.sid == bindparam("sid"))
_JOIN_SESSION = (update(_SESSIONS).where(_SESSIONS.c.sid == bindparam("of_sid"))
                 .values(client_ids=bindparam("client_ids"), last_seen_at=bindparam("now")))


def on_login(sender, account=None, sid=None, session_key=None, authentication=None, **_):
    if account is None or sid is None:
        return
    db.session.execute(_INSERT_SESSION, {
        "sid": sid, "session_key": session_key, "account_id": account.id, "client_ids": [],
        "authentication": authentication.as_json() if authentication is not None else None,
        "user_agent": (request.user_agent.string or "")[:300] if request else None,
        "client_address": request.remote_addr if request else None,
    })  # committed with the sign-in (login.flow.finish)
    g.sso_session_started = sid  # no client yet: the login's own authorization need not read it


def on_logout(sender, sid=None, **_):
    if sid:
        end_sso_session(sid, reason="logout", from_browser=True)


def on_end_requested(sender, sid=None, reason="upstream_logout", **_):
    if sid:
        end_sso_session(sid, reason=reason)


def connect() -> None:
    signals.login_succeeded.connect(on_login)
    signals.logged_out.connect(on_logout)
    signals.sso_session_end_requested.connect(on_end_requested)


def find(sid: str | None) -> SsoSession | None:
    if not sid:
        return None
    return db.session.execute(db.select(SsoSession).filter_by(sid=sid)).scalar_one_or_none()


def join(sid: str | None, client_id: str) -> None:
    """Note that the client got a code in this session (the caller commits)."""
    if not sid:
        return
    if g.get("sso_session_started") == sid:  # started by this very request (idp.login.views)
        clients = []
    else:
        clients = db.session.execute(_CLIENTS_OF_SESSION, {"sid": sid}).scalar()
        if clients is None:
            return
    if client_id not in clients:
        db.session.execute(_JOIN_SESSION, {"of_sid": sid, "client_ids": [*clients, client_id],
                                           "now": services().clock.now()})


def active_sessions(account_id: int) -> list[SsoSession]:
    return list(db.session.execute(
        db.select(SsoSession).filter_by(account_id=account_id).where(SsoSession.ended_at.is_(None))
        .order_by(SsoSession.created_at.desc())
    ).scalars())


def end_sso_session(sid: str, reason: str, from_browser: bool = False) -> bool:
    row = find(sid)
    if row is None or row.ended_at is not None:
        return False
    row.ended_at = services().clock.now()
    db.session.flush()
    if row.session_key and not from_browser:
        current_app.session_interface.end_session(row.session_key)
    storage.revoke_account_tokens(row.account_id, sid=sid)
    account = storage.account_by_id(row.account_id)
    signals.session_ended.send(current_app._get_current_object(),
                               subject=account.login_name if account else row.account_id,
                               details={"reason": reason, "clients": row.client_ids})
    if account is not None:
        backchannel.notify_clients(account, sid, row.client_ids)
    return True


def end_everything(account_id: int, reason: str) -> int:
    """Every session of the account ended (browser sessions gone, the clients told by
    back-channel logout through the job queue) and every refresh token revoked, those of no
    session too (offline access): what disabling, a lock by staff and a password recovery do.
    Its access tokens and codes die by the account's cut-off (idp.security.cut_offs). Returns
    the sessions ended."""
    ended = sum(1 for row in active_sessions(account_id) if end_sso_session(row.sid, reason=reason))
    storage.revoke_account_tokens(account_id)
    return ended


def end_current_session(reason: str) -> None:
    """End the browser's own session (RP-initiated logout)."""
    sid = session.get("sid")
    login_name = session.get("login_name")
    session.end()
    if sid:
        end_sso_session(sid, reason=reason, from_browser=True)
    if login_name:
        signals.logged_out.send(current_app._get_current_object(), subject=login_name,
                                actor=login_name, sid=None)
