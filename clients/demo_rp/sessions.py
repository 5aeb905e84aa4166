"""The business system's own sessions, kept on the server.

The cookie holds only a random key; the data (who signed in, the provider's ``sid``, Authlib's
state while a sign-in is under way) stays here. That is what lets a back-channel logout from
the provider end a session: it names the ``sid``, and every local session with it is dropped.
A real system keeps this in its database or Redis with an expiry; a dict shows the idea.
"""

from __future__ import annotations

import secrets
import threading

from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict


class LocalSession(CallbackDict, SessionMixin):
    def __init__(self, data=None, key: str | None = None) -> None:
        def on_update(self_):
            self_.modified = True

        super().__init__(data, on_update)
        self.key = key          # None: not stored yet
        self.loaded_key = key   # the key the browser sent
        self.modified = False

    def renew(self) -> None:
        """A new key at sign-in and sign-out (no session fixation); the old entry is dropped."""
        self.key = None
        self.modified = True


class LocalSessions(SessionInterface):
    def __init__(self, cookie_name: str) -> None:
        self.cookie_name = cookie_name
        self._data: dict[str, dict] = {}
        self._lock = threading.Lock()

    def open_session(self, app, request) -> LocalSession:
        key = request.cookies.get(self.cookie_name)
        with self._lock:
            data = self._data.get(key) if key else None
        return LocalSession(dict(data), key) if data is not None else LocalSession()

    def save_session(self, app, session: LocalSession, response) -> None:
        if not session.modified:
            return
        cookie = {"path": "/", "httponly": True, "samesite": "Lax", "secure": app.config["SECURE_COOKIES"]}
        with self._lock:
            if session.loaded_key and session.loaded_key != session.key:
                self._data.pop(session.loaded_key, None)
            if not session:
                if session.key:
                    self._data.pop(session.key, None)
                if session.loaded_key:
                    response.delete_cookie(self.cookie_name, **cookie)
                return
            if session.key is None:
                session.key = secrets.token_urlsafe(32)
            elif session.key not in self._data:
                return  # ended meanwhile by a back-channel logout: don't bring it back
            self._data[session.key] = dict(session)
        response.set_cookie(self.cookie_name, session.key, **cookie)

    def end(self, sid: str | None = None, sub: str | None = None) -> int:
        """End every session of the provider session ``sid`` (or, without one, of the user
        ``sub``); returns how many ended."""
        def matches(data: dict) -> bool:
            if sid is not None:
                return data.get("sid") == sid and (sub is None or data.get("sub") == sub)
            return sub is not None and data.get("sub") == sub

        with self._lock:
            keys = [key for key, data in self._data.items() if matches(data)]
            for key in keys:
                del self._data[key]
        return len(keys)
