"""The login interaction as an ordered list of steps, then required actions.

A step collects one proof (password now; an SMS code, a TOTP or choosing whom one acts for
in later issues) and ends in success, challenge or failure. The policy says which steps an
account type needs; required actions (set a new password, complete real-name data) run once
the user is known. The flow's state lives in the server-side session under ``login_flow``,
so the authorization endpoint can start a flow and resume when it is complete.
"""

from __future__ import annotations

import secrets

from flask import current_app, session

from idp import signals
from idp.extensions import db, services
from idp.models.accounts import Account

FLOW_KEY = "login_flow"

# Steps per account type, in order. Each name is a view endpoint of the login blueprint.
POLICY: dict[str, tuple[str, ...]] = {
    "natural": ("password",),
    "legal": ("password",),
}


def start(return_to: str | None = None) -> dict:
    state = {"return_to": return_to, "done": []}
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
    for name in POLICY[account.account_type]:
        if name not in state["done"]:
            return name
    return None


def required_actions(account: Account) -> list[str]:
    """Actions the account must complete before the sign-in finishes (each a view of the
    login blueprint); later issues add completing real-name data for systems that need it."""
    actions = []
    if account.must_change_password:
        actions.append("update_password")
    return actions


def authenticated_account() -> Account | None:
    """The account that has passed every step of this flow but is not signed in yet."""
    state = session.get(FLOW_KEY) or {}
    account = db.session.get(Account, state["account_id"]) if state.get("account_id") else None
    if account is None or set(POLICY[account.account_type]) - set(state.get("done", [])):
        return None
    return account


def finish(account: Account, method: str = "pwd") -> str:
    """Sign the account in: renew the session id, remember who and when; return the target.

    ``sid`` names this sign-in for single logout; ``fresh_login_for`` tells the page that
    asked for the login (an authorization request with prompt=login or max_age) that it
    happened for it, once.
    """
    return_to = current().get("return_to")
    session.regenerate()
    session.clear()
    sid = secrets.token_urlsafe(24)
    session.update(
        account_id=account.id,
        login_name=account.login_name,
        account_type=account.account_type,
        auth_time=int(services().clock.time()),
        amr=[method],
        sid=sid,
        fresh_login_for=return_to,
    )
    account.last_login_at = services().clock.now()
    signals.login_succeeded.send(
        current_app._get_current_object(), subject=account.login_name, account=account, sid=sid,
        session_key=session.sid,
        details={"account_type": account.account_type}, committed_by_sender=True,
    )
    db.session.commit()  # the sign-in, its audit event and its SSO session, together
    return return_to or ""
