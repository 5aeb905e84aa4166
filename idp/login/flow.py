"""The login interaction as an ordered list of steps, then required actions.

This is the interaction of the "login" prompt of the interaction policy (idp.login.policy).
A step collects one proof (password now; an SMS code, a TOTP or choosing whom one acts for
in later issues) and ends in success, challenge or failure. ``STEPS`` says which steps an
account type needs; required actions (set a new password, complete real-name data) run once
the user is known. The flow's state lives in the server-side session under ``login_flow``,
with the id of the authorization request stored for it (idp.login.interaction), resumed
when the flow finishes.
"""

from __future__ import annotations

import secrets

from flask import current_app, session

from idp import signals
from idp.extensions import db, services
from idp.login.policy import required_actions  # noqa: F401  # the views' name for it
from idp.login.record import Authentication
from idp.models.accounts import Account

FLOW_KEY = "login_flow"

# The steps of the "login" prompt (idp.login.policy) per account type, in order. Each name is
# a view endpoint of the login blueprint.
STEPS: dict[str, tuple[str, ...]] = {
    "natural": ("password",),
    "legal": ("password",),
}


def start(return_to: str | None = None, interaction: str | None = None) -> dict:
    """``interaction``: the id of the authorization request stored for this sign-in
    (idp.login.interaction), resumed when it finishes."""
    state = {"return_to": return_to, "done": [], "interaction": interaction}
    session[FLOW_KEY] = state
    return state


def current() -> dict:
    return session.get(FLOW_KEY) or start()


def complete_step(step: str, account: Account) -> str | None:
    """Record a finished step; return the next step's name, or None when all are done."""
    state = current()
    state["account_id"] = account.id
    state["done"] = [*state.get("done", []), step]
    session[FLOW_KEY] = state
    for name in STEPS[account.account_type]:
        if name not in state["done"]:
            return name
    return None


def complete_upstream(account: Account, keep: dict | None = None) -> None:
    """The alternative first step: an upstream provider (the national platform) vouched for
    the account, in place of every step of ``STEPS`` (``amr`` ``fed``). ``keep``: what the
    signed-in session must hold of it (its ID token for single logout)."""
    state = current()
    state.update(account_id=account.id, done=[UPSTREAM_STEP], methods=["fed"], keep=keep or {})
    session[FLOW_KEY] = state


UPSTREAM_STEP = "upstream"


def methods() -> tuple[str, ...]:
    """The methods this flow's steps used (RFC 8176 names)."""
    return tuple(current().get("methods") or ("pwd",))


def authenticated_account() -> Account | None:
    """The account that has passed every step of this flow but is not signed in yet."""
    state = session.get(FLOW_KEY) or {}
    account = db.session.get(Account, state["account_id"]) if state.get("account_id") else None
    if account is None:
        return None
    needed = {UPSTREAM_STEP} if "fed" in (state.get("methods") or ()) else set(STEPS[account.account_type])
    if needed - set(state.get("done", [])):
        return None
    return account


def finish(account: Account, methods: tuple[str, ...] = ("pwd",)) -> str:
    """Sign the account in with the ``methods`` used (RFC 8176 names): renew the session id,
    build the sign-in's record (idp.login.record); return the page the flow was started for.

    ``sid`` names this sign-in for single logout. The record is kept whole in the browser
    session (``current_authentication``) and, through ``login_succeeded``, in the SSO session.
    """
    return_to = current().get("return_to")
    keep = current().get("keep") or {}
    session.regenerate()
    session.clear()
    sid = secrets.token_urlsafe(24)
    authentication = Authentication(sub=account.sub, account_type=account.account_type, sid=sid,
                                    auth_time=int(services().clock.time()), amr=tuple(methods))
    session.update(
        account_id=account.id,
        login_name=account.login_name,
        auth_time=authentication.auth_time,  # read on their own (sessions, audit, logout)
        sid=sid,
        authentication=authentication.as_json(),
        **keep,
    )
    account.last_login_at = services().clock.now()
    signals.login_succeeded.send(
        current_app._get_current_object(), subject=account.login_name, account=account, sid=sid,
        session_key=session.sid, authentication=authentication,
        details={"account_type": account.account_type},
    )  # the sign-in, its audit event and its SSO session: one unit, committed by the request
    return return_to or ""


def current_authentication(account: Account) -> Authentication:
    """The record of the browser session's sign-in of ``account``. A session from before the
    record existed has it derived from what it kept (its sid, time and methods)."""
    data = session.get("authentication")
    if data and data.get("sub") == account.sub:
        return Authentication.from_json(data)
    return Authentication(sub=account.sub, account_type=account.account_type, sid=session.get("sid"),
                          auth_time=int(session.get("auth_time") or 0),
                          amr=tuple(session.get("amr") or ("pwd",)))
