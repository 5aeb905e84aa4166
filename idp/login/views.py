"""The login page (统一用户登录), captcha images, logout."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, make_response, redirect, render_template, request, session, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp import signals
from idp.accounts.names import login_name_key, normalise_login_name
from idp.audit import client_address
from idp.cases import rejection_reason
from idp.accounts.forms import PASSWORD_MESSAGES, NewPasswordForm
from idp.accounts.service import FieldError, change_password
from idp.accounts.views import field_message
from idp.extensions import db
from idp.login import flow, handlers, interaction
from idp.login.forms import LoginForm, real_name_forms
from idp.security import captcha, identifiers

bp = Blueprint("login", __name__)

TAB_NAMES = {"natural": _l("Natural-person login"), "legal": _l("Legal-entity login")}


def safe_return_to(target: str | None) -> str | None:
    """Only same-site paths: the login page must never become an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def tab_for_hint(hint: str) -> str | None:
    """OIDC login_hint picks the tab by the form of the name, never by looking the account
    up (which would tell anyone which names exist): a USCC or a Torch "HJ_" unit login is a
    unit's, anything else a person's."""
    if not hint:
        return None
    upper = hint.upper()
    if upper.startswith("HJ_") or identifiers.is_valid_uscc(upper):
        return "legal"
    return "natural"


@bp.get("/")
def index():
    if session.get("account_id"):
        return redirect(url_for("accounts.profile"))
    return redirect(url_for("login.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        flow.start(safe_return_to(request.args.get("next")), (request.args.get("interaction") or "")[:64] or None)
        hint = normalise_login_name(request.args.get("login_hint"))[:64]
        if hint:
            form.login_name.data = hint
        form.account_type.data = request.args.get("type") or tab_for_hint(hint)
        if form.account_type.data not in TAB_NAMES:
            form.account_type.data = "natural"
        return _page(form)

    if not form.validate():
        return _page(form), 400
    if captcha.enabled() and not captcha.passes("login", form.captcha.data):
        form.error("captcha", _("The captcha is wrong or has expired. Please enter the new one."))
        return _page(form), 400

    name = normalise_login_name(form.login_name.data)
    outcome = handlers.authenticate(
        form.account_type.data, login_name_key(name), form.password.data, client_address() or "-"
    )
    if not outcome.ok:
        return _page(form, outcome=outcome), 429 if outcome.reason == "address_throttled" else 401

    next_step = flow.complete_step("password", outcome.account)
    if next_step is not None:  # later issues: sms, totp, acting_for
        return redirect(url_for(f"login.{next_step}"))
    return _after_steps(outcome.account)


def _after_steps(account):
    actions = flow.required_actions(account)
    if actions:
        return redirect(url_for(f"login.{actions[0]}"))
    stored = interaction.take(flow.current().get("interaction"))
    target = flow.finish(account)
    if stored is not None:  # the authorization request this sign-in was for, answered
        return interaction.resume(stored)
    return redirect(target or url_for("accounts.profile"))


@bp.route("/login/update-password", methods=["GET", "POST"])
def update_password():
    """Required action: the password must be changed before the sign-in completes."""
    account = flow.authenticated_account()
    if account is None:
        return redirect(url_for("login.login"))
    form = NewPasswordForm(account.login_name)
    if request.method == "POST" and form.validate():
        try:
            change_password(account, form.password.data)
        except FieldError as error:
            form.error(error.field, PASSWORD_MESSAGES[error.reason])
        else:
            return _after_steps(account)
    status = 400 if request.method == "POST" else 200
    return render_template("login/update_password.html", form=form, account=account), status


@bp.route("/login/complete-real-name", methods=["GET", "POST"])
def complete_real_name():
    """Required action: an account imported from a legacy system completes its real-name data
    before its first sign-in finishes; saving runs the automatic verification, as 保存 in the
    user centre does."""
    account = flow.authenticated_account()
    if account is None:
        return redirect(url_for("login.login"))
    if not account.must_complete_real_name:
        return _after_steps(account)
    form_class = real_name_forms()[account.account_type]
    if request.method == "GET":
        form = form_class(obj=account)
        return render_template("login/complete_real_name.html", form=form, account=account)
    form = form_class()
    if form.validate():
        from idp.legacy.service import real_name_completed
        from idp.verification import service as verification

        fields = {name: f.data for name, f in form._fields.items() if name != "csrf_token"}
        try:
            verification.save_profile(account, fields)
        except FieldError as error:
            form.error(error.field, field_message(error.reason))
        else:
            real_name_completed(account)
            db.session.commit()
            return _after_steps(account)
    return render_template("login/complete_real_name.html", form=form, account=account), 400


def _page(form: LoginForm, outcome: handlers.AuthOutcome | None = None):
    form.captcha.data = ""  # the answer was spent; the page shows a new image
    message = _outcome_message(outcome) if outcome else None
    return render_template(
        "login/login.html", form=form, message=message,
        reason=outcome.reason if outcome else None,
    )


def _outcome_message(outcome: handlers.AuthOutcome) -> str:
    until = format_datetime(outcome.until, "yyyy-MM-dd HH:mm:ss") if outcome.until else ""
    if outcome.reason == "account_locked":
        return _("Too many wrong passwords: this account is locked until %(until)s.", until=until)
    if outcome.reason == "address_throttled":
        return _("Too many failed sign-ins from your network. Please try again after %(until)s.", until=until)
    if outcome.reason == "wrong_account_type":
        return _("This is a %(kind)s account. Please sign in on the “%(tab)s” tab.",
                 kind=_("legal-entity") if outcome.correct_type == "legal" else _("natural-person"),
                 tab=TAB_NAMES[outcome.correct_type])
    if outcome.reason == "pending_review":
        return _("Your registration is waiting for review. Please sign in once it has been approved.")
    if outcome.reason == "account_disabled":
        reason = rejection_reason(outcome.account) if outcome.account else None
        if reason:
            return _("Your registration was not approved: %(reason)s", reason=reason)
        return _("This account has been disabled. Please call 010-88659000.")
    return _("The login name or password is wrong.")


@bp.get("/captcha/<purpose>.png")
def captcha_image(purpose: str):
    if purpose not in captcha.PURPOSES or not captcha.enabled():
        return make_response("", 404)
    try:
        png = captcha.new_image(purpose, client_address() or "-")
    except captcha.CaptchaThrottled as throttled:
        return make_response("", 429, {"Retry-After": str(throttled.retry_after)})
    response = make_response(png)
    response.headers["Content-Type"] = "image/png"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "GET":
        return render_template("login/logout.html")
    if request.form.get("logout") != "yes":
        return redirect(url_for("accounts.profile"))
    login_name, sid = session.get("login_name"), session.get("sid")
    session.end()
    if login_name:
        signals.logged_out.send(current_app._get_current_object(), subject=login_name, actor=login_name,
                                sid=sid)
    return redirect(url_for("login.login"))
