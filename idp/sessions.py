"""Server-side sessions kept in the ephemeral store.

The cookie carries only a random id, so ending a session (logout, an administrator, a
back-channel logout later) really ends it, and renewing the id at login defeats fixation.
"""

from __future__ import annotations

import json
import secrets

from flask import g, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from idp.errors import Unavailable, unavailable_dependency

COOKIE_NAME = "idp_session"
_KEY = "session:"
# An unchanged session is written back (to slide its idle expiry) at most this often, so that
# parallel requests of one page (stylesheet, script, captcha image) don't overwrite each
# other's changes with stale copies, and so that most requests write nothing at all.
_REFRESH_SECONDS = 60
_STAMP = "_refreshed"
# Keys whose presence means someone is signed in: a user (login.flow) or a staff member (the
# console, which applies its own shorter idle limit, STAFF_SESSION_IDLE, on top).
SIGNED_IN_KEYS = ("account_id", "staff_id")


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, sid: str | None = None, new: bool = False) -> None:
        def on_update(self_):
            self_.modified = True

        super().__init__(initial, on_update)
        self._sid = sid
        self.new = new
        self.modified = False
        self.previous_sid: str | None = None
        self.ended = False
        # The store did not answer when the session was read: the request is answered 503
        # (idp.errors.Unavailable) and nothing is written back.
        self.unavailable: BaseException | None = None

    @property
    def sid(self) -> str:
        """Drawn when first needed: most requests without a cookie never store a session."""
        if self._sid is None:
            self._sid = secrets.token_urlsafe(32)
        return self._sid

    @sid.setter
    def sid(self, value: str) -> None:
        self._sid = value

    def regenerate(self) -> None:
        """Give the session a new id (at login), keeping its contents."""
        if self.previous_sid is None:
            self.previous_sid = self.sid
        self.sid = secrets.token_urlsafe(32)
        self.modified = True

    def end(self) -> None:
        """Forget everything and drop the stored copy (logout)."""
        self.clear()
        self.ended = True
        self.modified = True


class StoreSessionInterface(SessionInterface):
    def __init__(self, store, lifetime: int, clock) -> None:
        self.store = store
        self.lifetime = lifetime
        self.clock = clock

    def open_session(self, app, request):
        sid = request.cookies.get(COOKIE_NAME)
        if sid and len(sid) < 100:
            try:
                raw = self.store.get(_KEY + sid)
            except Exception as error:
                if unavailable_dependency(error) is None:
                    raise
                # Not raised here (the request would then have no session for the error page
                # to use): it goes on with an empty session marked so, and
                # refuse_without_session, the first thing every request does, answers 503.
                unread = ServerSession(sid=sid)
                unread.unavailable = error
                return unread
            if raw is not None:
                return ServerSession(json.loads(raw), sid=sid)
        return ServerSession(new=True)

    def save_session(self, app, session: ServerSession, response):
        if getattr(session, "unavailable", None) is not None:
            return  # never read: writing it back would overwrite the real one with nothing
        try:
            self._save(app, session, response)
        except Exception as error:
            if unavailable_dependency(error) is None:
                raise
            raise Unavailable("store", error) from error

    def _save(self, app, session: ServerSession, response):
        cookie = dict(
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            httponly=True,
            secure=app.config["SECURE_COOKIES"],
            samesite="Lax",
        )
        if session.previous_sid:
            self.store.delete(_KEY + session.previous_sid)
        if session.ended or (not session and not session.new):
            self.store.delete(_KEY + session.sid)
            response.delete_cookie(COOKIE_NAME, **cookie)
            return
        if not session:
            return
        now = int(self.clock.time())
        if not session.modified and now - session.get(_STAMP, 0) < _REFRESH_SECONDS:
            return
        lifetime = self.lifetime_of(app, session)
        dict.__setitem__(session, _STAMP, now)
        self.store.set(_KEY + session.sid, json.dumps(dict(session), separators=(",", ":")).encode(), lifetime)
        response.set_cookie(COOKIE_NAME, session.sid, max_age=lifetime, **cookie)
        response.vary.add("Cookie")

    def lifetime_of(self, app, session: ServerSession) -> int:
        """A signed-in session lives SESSION_LIFETIME; one without an account (a login page
        opened, a captcha fetched, a registration begun) only ANONYMOUS_SESSION_LIFETIME, so
        that every anonymous visit does not hold server memory for hours."""
        if any(session.get(key) for key in SIGNED_IN_KEYS):
            return self.lifetime
        return min(self.lifetime, int(app.config.get("ANONYMOUS_SESSION_LIFETIME", self.lifetime)))

    def end_session(self, sid: str) -> None:
        self.store.delete(_KEY + sid)

    def session_exists(self, sid: str) -> bool:
        """Whether the browser session is still in the store: its idle expiry slides there, at
        every request, while the SSO session's row is touched only when a client joins it
        (idp.ops.housekeeping must not purge the row of a session still in use)."""
        return self.store.get(_KEY + sid) is not None


def refuse_without_session() -> None:
    """Before anything else in a request: a session the store could not read means the store is
    down, and a page that needs it (every page but the error page itself) is answered 503."""
    unread = getattr(session, "unavailable", None)
    if unread is not None:
        raise Unavailable("store", unread)


def current_account():
    """The signed-in account, read once per request for as long as the session names it (a
    sign-in or logout within the request changes whom the session names)."""
    from idp.extensions import db
    from idp.models.accounts import Account

    account_id = session.get("account_id")
    cached = g.get("current_account")
    if cached is None or cached[0] != account_id:
        account = db.session.get(Account, account_id) if account_id else None
        if account is not None and not _still_live(account):
            account = None
        cached = g.current_account = (account_id, account)
    return cached[1]


def _still_live(account) -> bool:
    """A session outlives its account's end nowhere: disabled, or signed in before a staff lock
    (the sessions are ended then; this holds should one have escaped). idp.security.cut_offs."""
    from idp.models.accounts import ACTIVE
    from idp.security.cut_offs import issued_before_cut_off

    return account.status == ACTIVE and not issued_before_cut_off(
        account.sub, None, session.get("auth_time") or 0)
