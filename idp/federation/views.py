"""Pages of the national platform's sign-in (国家政务服务平台账号登录): the start, the callback,
the first-time choice (link an account / create one), the required action that completes an
account made from the upstream's claims, the user centre's link page, the upstream's
back-channel logout."""

from __future__ import annotations

import hashlib
import json

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp import signals
from idp.accounts.forms import PASSWORD_MESSAGES  # noqa: F401  (the link form shares the login messages)
from idp.accounts.names import login_name_key, normalise_login_name
from idp.accounts.service import FieldError, update_profile
from idp.accounts.views import FIELD_MESSAGES, current_account, login_required
from idp.audit import client_address
from idp.extensions import csrf, db, services
from idp.federation import service
from idp.federation.forms import CompleteProfileForm, FirstSignInForm
from idp.federation.upstream import Client, Upstream, UpstreamError
from idp.login import flow, handlers
from idp.login.views import after_steps, login_failure_message, safe_return_to
from idp.models.accounts import ACTIVE, PENDING_REVIEW, Account
from idp.security import outbound

bp = Blueprint("national", __name__)

PENDING_KEY = "national_pending"  # state, nonce, PKCE verifier of the request sent upstream
FIRST_KEY = "national_first"  # the validated upstream identity waiting for the first-time choice
SIGNED_IN_KEY = "national"  # in the signed-in session: the upstream's ID token and sid
PENDING_TTL = 900  # seconds a request sent upstream, or a first-time choice, may wait

# What the error page says, by reason code (idp.federation.upstream); anything else: the last.
FAILURE_MESSAGES = {
    "access_denied": _l("You did not allow the national government service platform to sign you in here."),
    "state_mismatch": _l("This sign-in was not started in this browser, or it has expired. Please start again."),
    "bad_signature": _l("The answer of the national government service platform could not be verified."),
    "unsupported_algorithm": _l("The answer of the national government service platform could not be verified."),
    "nonce_mismatch": _l("The answer of the national government service platform does not belong to this sign-in."),
    "token_expired": _l("The answer of the national government service platform has expired. Please start again."),
    "upstream_unavailable": _l("The national government service platform is not answering at the moment. "
                               "Please try again later, or sign in with your login name and password."),
    "account_disabled": _l("This account has been disabled. Please call 010-88659000."),
    "account_locked": _l("This account is locked for the moment. Please try again later."),
    "pending_review": _l("Your registration is waiting for review. Please sign in once it has been approved."),
    "not_configured": _l("Sign-in with the national government service platform is not offered."),
}
GENERIC_FAILURE = _l("The sign-in with the national government service platform did not succeed. "
                     "Nothing has been changed.")
LINK_MESSAGES = {
    "identity_linked": _l("This national platform account is already linked to an account here."),
    "account_linked": _l("This account is already linked to another national platform account."),
    "password_required": _l("Please set a password first: without the link, the password is your way in."),
}


def upstream() -> Upstream | None:
    return Upstream.from_config(current_app.config)


def client_for(up: Upstream) -> Client:
    return Client(up, outbound.Policy.from_config(current_app.config), services().store, services().clock)


def _callback_uri() -> str:
    return current_app.config["ISSUER"] + "/login/national/callback"


def _failed(reason: str, detail: str = "", status: int = 400):
    """The clear page with the way back; nothing was created or linked; audited."""
    db.session.rollback()  # whatever was begun is dropped, never committed with the audit event
    signals.upstream_login_failed.send(current_app._get_current_object(), subject="national_platform",
                                       outcome="failure", details={"reason": reason, "detail": detail[:100]})
    message = FAILURE_MESSAGES.get(reason, GENERIC_FAILURE)
    return render_template("federation/failed.html", message=message, reason=reason), status


@bp.get("/login/national")
def start():
    up = upstream()
    if up is None:
        abort(404)
    if request.args.get("next") or flow.FLOW_KEY not in session:
        state = flow.current()
        flow.start(safe_return_to(request.args.get("next")) or state.get("return_to"), state.get("interaction"))
    try:
        url, pending = client_for(up).authorization_request(_callback_uri())
    except UpstreamError as error:
        return _failed(error.reason, error.detail, 502)
    session[PENDING_KEY] = pending
    return redirect(url)


@bp.get("/login/national/callback")
def callback():
    up = upstream()
    if up is None:
        abort(404)
    pending = session.pop(PENDING_KEY, None)
    if pending and services().clock.time() - pending.get("issued_at", 0) > PENDING_TTL:
        pending = None
    client = client_for(up)
    try:
        code = client.check_response(request.args, pending)
        claims, id_token = client.exchange(code, pending, _callback_uri())
    except UpstreamError as error:
        status = 502 if error.reason == "upstream_unavailable" else 400
        return _failed(error.reason, error.detail, status)
    keep = _kept(claims, id_token)
    link = service.find_link(up.issuer, claims["sub"])
    if link is not None:  # later sign-ins go straight through
        account = db.session.get(Account, link.account_id)
        refusal = _refusal(account)
        if refusal:
            return _failed(refusal, status=403)
        service.note_sign_in(link)
        return _sign_in(account, keep)
    session[FIRST_KEY] = {"sub": claims["sub"], "claims": _claims_kept(claims), "keep": keep,
                          "verified": service.upstream_says_verified(claims, up.verified_claim, up.verified_values),
                          "expires_at": services().clock.time() + PENDING_TTL}
    return redirect(url_for("national.first"))


def _kept(claims: dict, id_token: str) -> dict:
    return {SIGNED_IN_KEY: {"id_token": id_token, "sid": claims.get("sid"), "sub": claims["sub"]}}


def _claims_kept(claims: dict) -> dict:
    """The upstream claims the first-time choice may use (the account made from them)."""
    wanted = ("name", "preferred_username", "email", "email_verified", "phone_number", "phone_number_verified",
              "birthdate", "verified_claims", "verification_status")
    return {k: claims[k] for k in wanted if k in claims}


def _refusal(account: Account | None) -> str | None:
    if account is None:
        return "account_disabled"
    if account.status == PENDING_REVIEW:
        return "pending_review"
    if account.status != ACTIVE:
        return "account_disabled"
    if handlers.locked_until(account) is not None:  # the login's lock, whoever set it (staff, lockout)
        return "account_locked"
    return None


def _sign_in(account: Account, keep: dict):
    flow.complete_upstream(account, keep)
    return after_steps(account)


def _first_time() -> dict | None:
    data = session.get(FIRST_KEY)
    if not data or data.get("expires_at", 0) < services().clock.time():
        return None
    return data


@bp.route("/login/national/first", methods=["GET", "POST"])
def first():
    """First sign-in: link an existing account (proved with its password) or create one."""
    data = _first_time()
    up = upstream()
    if data is None or up is None:
        session.pop(FIRST_KEY, None)
        return _failed("state_mismatch", "no first-time sign-in waiting")
    form = FirstSignInForm()
    if request.method == "GET":
        return _first_page(form, data)
    if not form.validate():
        return _first_page(form, data), 400
    try:
        if form.choice.data == "create":
            account = service.create_from_claims(up.issuer, data["sub"], data["claims"], data["verified"])
            if account.status != ACTIVE:  # made, and waiting for review: said, and committed
                session.pop(FIRST_KEY, None)
                return render_template("federation/failed.html", reason="pending_review",
                                       message=FAILURE_MESSAGES.get("pending_review", GENERIC_FAILURE))
        else:
            if not form.login_name.data or not form.password.data:
                form.error("password", _("Please enter your login name and password."))
                return _first_page(form, data), 400
            name = normalise_login_name(form.login_name.data)
            outcome = handlers.authenticate(form.account_type.data, login_name_key(name), form.password.data,
                                            client_address() or "-")
            if not outcome.ok:
                return _first_page(form, data, message=login_failure_message(outcome), reason=outcome.reason), (
                    429 if outcome.reason == "address_throttled" else 401)
            account = outcome.account
            service.link_existing(account, up.issuer, data["sub"], data["claims"], data["verified"])
    except service.LinkRefused as refused:
        db.session.rollback()
        return _first_page(form, data, message=LINK_MESSAGES.get(refused.reason, GENERIC_FAILURE),
                           reason=refused.reason), 409
    session.pop(FIRST_KEY, None)  # the account or link stands even if a required action is left half-way
    return _sign_in(account, data["keep"])


def _first_page(form, data: dict, message: str | None = None, reason: str | None = None):
    return render_template("federation/first.html", form=form, upstream_name=data["claims"].get("name"),
                           message=message, reason=reason)


@bp.route("/login/national/complete", methods=["GET", "POST"])
def complete_profile():
    """Required action: what an account made from the upstream's claims lacks."""
    account = flow.authenticated_account()
    if account is None:
        return redirect(url_for("login.login"))
    missing = service.missing_profile(account)
    form = CompleteProfileForm(missing)
    if request.method == "POST" and form.validate():
        fields = {name: getattr(form, name).data for name in missing}
        try:
            update_profile(account, fields)
        except FieldError as error:
            form.error(error.field, FIELD_MESSAGES.get(error.reason, error.reason))
        else:
            return after_steps(account)
    status = 400 if request.method == "POST" else 200
    return render_template("federation/complete.html", form=form, missing=missing, account=account), status


# -- the user centre ----------------------------------------------------------------------------

@bp.get("/center/national")
@login_required
def links():
    account = current_account()
    return render_template("federation/links.html", account=account, links=service.links_of(account.id),
                           available=upstream() is not None)


@bp.post("/center/national/<int:link_id>/remove")
@login_required
def remove(link_id: int):
    account = current_account()
    try:
        service.unlink(account, link_id, actor=account.login_name)
    except service.LinkRefused as refused:
        if refused.reason == "no_such_link":
            abort(404)
        flash(str(LINK_MESSAGES[refused.reason]))
        return redirect(url_for("national.links")), 303
    flash(_("The link to the national government service platform has been removed."))
    return redirect(url_for("national.links")), 303


# -- single logout ------------------------------------------------------------------------------

def _index_key(kind: str, value: str) -> str:
    return f"national:{kind}:" + hashlib.sha256(value.encode()).hexdigest()


def remember_session(sender, sid=None, **_) -> None:
    """A sign-in through the upstream: its sid and sub name this session for its back-channel
    logout (kept as long as a session lives)."""
    kept = session.get(SIGNED_IN_KEY) if sid else None
    if not kept:
        return
    store, lifetime = services().store, current_app.config["SESSION_LIFETIME"]
    for kind, value in (("sid", kept.get("sid")), ("sub", kept.get("sub"))):
        if value:
            key = _index_key(kind, str(value))
            sids = json.loads(store.get(key) or b"[]")
            store.set(key, json.dumps([*sids[-19:], sid]).encode(), lifetime)


@csrf.exempt
@bp.post("/login/national/backchannel-logout")
def backchannel_logout():
    """OpenID Connect Back-Channel Logout 1.0 §2.5: the upstream says a session ended there;
    the sessions here that it began end too."""
    up = upstream()
    if up is None:
        abort(404)
    try:
        claims = client_for(up).validate_logout_token(request.form.get("logout_token") or "")
    except UpstreamError as error:
        signals.upstream_login_failed.send(current_app._get_current_object(), subject="national_platform",
                                           outcome="refused", details={"reason": error.reason, "detail": "logout"})
        response = jsonify(error="invalid_request", error_description=error.reason)
        response.status_code = 400
        response.headers["Cache-Control"] = "no-store"
        return response
    store = services().store
    if claims.get("jti"):  # a logout token is used once (Back-Channel Logout 1.0 §2.6, step 9)
        seen = _index_key("jti", str(claims["jti"]))
        if store.get(seen) is not None:
            response = jsonify(error="invalid_request", error_description="replayed")
            response.status_code = 400
            return response
        store.set(seen, b"1", 600)
    kind, value = ("sid", claims["sid"]) if claims.get("sid") else ("sub", claims["sub"])
    key = _index_key(kind, str(value))
    sids = json.loads(store.get(key) or b"[]")
    store.delete(key)
    for sid in sids:
        signals.sso_session_end_requested.send(current_app._get_current_object(), sid=sid,
                                               reason="upstream_logout")
    link = service.find_link(up.issuer, claims["sub"]) if claims.get("sub") else None
    signals.upstream_logged_out.send(current_app._get_current_object(),
                                     subject=str(link.account_id) if link else "national_platform",
                                     details={"sessions": len(sids)})
    response = current_app.response_class("", 200)
    response.headers["Cache-Control"] = "no-store"
    return response


def logout_upstream(signed_in: dict) -> str | None:
    """After a sign-out here: the upstream's RP-initiated logout, when the sign-in came from it
    and it offers one; it sends the browser back to our login page."""
    kept = signed_in.get(SIGNED_IN_KEY)
    up = upstream()
    if not kept or up is None:
        return None
    return client_for(up).logout_url(kept.get("id_token"), current_app.config["ISSUER"] + "/login")
