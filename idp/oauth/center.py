"""User-centre pages about sign-ins: 我的授权应用 (consents given to business systems, revocable)
and the user's active sessions (endable, which signs the other device out everywhere)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from idp import signals
from idp.accounts.views import current_account, login_required
from idp.extensions import db
from idp.models.clients import Client
from idp.models.oauth import Consent
from idp.oauth import sessions, storage
from idp.oauth.views import SCOPE_DESCRIPTIONS

bp = Blueprint("center", __name__, url_prefix="/center")


@bp.get("/apps")
@login_required
def apps():
    account = current_account()
    consents = db.session.execute(
        db.select(Consent, Client).join(Client, Client.client_id == Consent.client_id)
        .where(Consent.account_id == account.id).order_by(Consent.granted_at.desc())
    ).all()
    rows = [(consent, client, [SCOPE_DESCRIPTIONS.get(s, s) for s in consent.scopes])
            for consent, client in consents]
    return render_template("oauth/apps.html", account=account, consents=rows,
                           sessions=sessions.active_sessions(account.id), current_sid=session.get("sid"))


@bp.post("/apps/<client_id>/revoke")
@login_required
def revoke_app(client_id: str):
    account = current_account()
    if not storage.revoke_consent(account.id, client_id):
        abort(404)
    signals.consent_revoked.send(current_app._get_current_object(), subject=account.login_name,
                                 details={"client_id": client_id})
    flash(_("The authorisation has been withdrawn."))
    return redirect(url_for("center.apps"))


@bp.post("/sessions/<sid>/end")
@login_required
def end_session(sid: str):
    account = current_account()
    row = sessions.find(sid)
    if row is None or row.account_id != account.id or row.ended_at is not None:
        abort(404)
    if sid == session.get("sid"):
        sessions.end_current_session(reason="user_centre")
        return redirect(url_for("login.login"))
    sessions.end_sso_session(sid, reason="user_centre")
    flash(_("The session has been ended."))
    return redirect(url_for("center.apps"))
