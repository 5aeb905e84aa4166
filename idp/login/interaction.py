"""Authorization requests waiting for an interaction (sign-in, required actions).

When the policy (idp.login.policy) finds the sign-in missing, the authorization endpoint stores
the request it has validated here and hands the browser to the sign-in page with the stored
request's id. The copy lives in this browser's server-side session (so it is bound to it), is
taken out once (single use) and is void after ``TTL`` seconds by the provider's clock. When the
interaction finishes, the copy is answered by the protocol layer's own function, registered
with ``on_resume`` (idp.oauth.views.resume): the login package never imports the protocol
package, and the browser's copy of the request (the login page's ``next``) decides nothing.
"""

from __future__ import annotations

import secrets

from flask import current_app, session

from idp.extensions import services

KEY = "interactions"
TTL = 900  # a sign-in with a forced password change takes a while; an anonymous session lives 1800 s
MAX_PENDING = 5  # tabs of one browser waiting at once; the oldest goes first
_RESUME = "idp.resume_authorization"


def on_resume(app, resume) -> None:
    """``resume(stored) -> response``: how the protocol layer answers a stored request."""
    app.extensions[_RESUME] = resume


def store(request: dict) -> str:
    now = services().clock.time()
    pending = {key: entry for key, entry in (session.get(KEY) or {}).items() if entry["expires_at"] > now}
    while len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda key: pending[key]["expires_at"]))
    interaction_id = secrets.token_urlsafe(16)
    pending[interaction_id] = {"request": request, "expires_at": now + TTL}
    session[KEY] = pending
    return interaction_id


def take(interaction_id: str | None) -> dict | None:
    """The stored request, removed (single use); None when unknown to this session or expired."""
    pending = dict(session.get(KEY) or {})
    entry = pending.pop(interaction_id, None) if interaction_id else None
    if entry is None:
        return None
    if pending:
        session[KEY] = pending
    else:
        session.pop(KEY, None)  # nothing left waiting: no empty entry kept in the session
    return entry["request"] if entry["expires_at"] > services().clock.time() else None


def resume(stored: dict):
    return current_app.extensions[_RESUME](stored)
