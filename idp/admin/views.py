"""Console sign-in (password, then TOTP or a recovery code), enrolment, sign-out, dashboard."""

from __future__ import annotations

import segno
from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from idp import signals
from idp.admin import dashboard
from idp.admin import staff as staff_service
from idp.admin.access import ROLE_LABELS, SEEN_KEY, STAFF_KEY, can, current_staff, staff_required
from idp.extensions import db, services
from idp.audit import client_address
from idp.forms import BaseForm
from idp.security import captcha
from idp.login.forms import captcha_field
from idp.login.views import safe_return_to
from idp.models.staff import StaffUser

bp = Blueprint("admin", __name__, url_prefix="/admin")
PENDING_KEY = "staff_pending"

MESSAGES = {
    "invalid_credentials": _l("The login name or password is wrong."),
    "captcha_wrong": _l("The captcha is wrong or has expired. Please enter the new one."),
    "not_enrolled": _l("This staff account has not been enrolled yet. Use your enrolment link."),
    "totp_wrong": _l("The code is wrong or was already used. Enter the current code from your authenticator."),
    "password_too_short": _l("The password must be at least 8 characters long."),
    "password_too_simple": _l("The password must contain at least 3 of: upper case letters, lower case letters, digits, special characters."),
    "password_too_long": _l("The password must be at most 128 characters long."),
    "password_equals_login_name": _l("The password must not be the same as the login name."),
}


class StaffLoginForm(BaseForm):
    login = StringField(_l("Login name"), validators=[DataRequired(), Length(max=64)],
                        render_kw={"autocomplete": "username"})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)],
                             render_kw={"autocomplete": "current-password"})
    captcha = captcha_field()


class SecondFactorForm(BaseForm):
    code = StringField(_l("Authenticator code or recovery code"), validators=[DataRequired(), Length(max=20)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class EnrolmentForm(BaseForm):
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)],
                             render_kw={"autocomplete": "new-password"})
    password_confirm = PasswordField(_l("Confirm password"), validators=[
        DataRequired(), EqualTo("password", _l("The two passwords do not match."))],
        render_kw={"autocomplete": "new-password"})
    code = StringField(_l("Code from the authenticator"), validators=[DataRequired(), Length(max=10)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


def _message(error: staff_service.StaffError) -> str:
    if error.reason == "account_locked":
        return _("Too many failed attempts: this staff account is locked until %(until)s.",
                 until=format_datetime(error.until, "yyyy-MM-dd HH:mm:ss"))
    if error.reason == "address_throttled":
        return _("Too many failed sign-ins from your network. Please try again after %(until)s.",
                 until=format_datetime(error.until, "yyyy-MM-dd HH:mm:ss"))
    return str(MESSAGES.get(error.reason, error.reason))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = StaffLoginForm()
    error = None
    if request.method == "POST" and form.validate():
        # The captcha comes first, as on the citizens' login page: a script without the
        # answer reaches neither the password check nor the counters.
        if captcha.enabled() and not captcha.passes("staff", form.captcha.data):
            error = staff_service.StaffError("captcha_wrong")
            form.error("captcha", str(MESSAGES["captcha_wrong"]))
        else:
            try:
                staff = staff_service.check_password(form.login.data, form.password.data, client_address() or "-")
            except staff_service.StaffError as exc:
                error = exc
            else:
                session.regenerate()
                session[PENDING_KEY] = staff.id
                session.pop(STAFF_KEY, None)
                return redirect(url_for("admin.second_factor", next=request.args.get("next")))
    form.captcha.data = ""  # spent, right or wrong; the page shows a new image
    status = {"captcha_wrong": 400, "address_throttled": 429}.get(error.reason, 401) if error else (
        400 if request.method == "POST" else 200)
    return render_template("admin/login.html", form=form, message=_message(error) if error else None,
                           reason=error.reason if error else None), status


@bp.route("/login/code", methods=["GET", "POST"])
def second_factor():
    staff = db.session.get(StaffUser, session.get(PENDING_KEY) or 0)
    if staff is None:
        return redirect(url_for("admin.login"))
    form = SecondFactorForm()
    error = None
    if request.method == "POST" and form.validate():
        try:
            staff_service.check_second_factor(staff, form.code.data)
        except staff_service.StaffError as exc:
            error = exc
            if exc.reason == "account_locked":
                session.pop(PENDING_KEY, None)
        else:
            session.regenerate()
            session.pop(PENDING_KEY, None)
            session[STAFF_KEY] = staff.id
            session[SEEN_KEY] = services().clock.time()
            return redirect(safe_return_to(request.args.get("next")) or url_for("admin.dashboard_page"))
    status = 401 if error else (400 if request.method == "POST" else 200)
    return render_template("admin/second_factor.html", form=form, message=_message(error) if error else None,
                           reason=error.reason if error else None), status


@bp.post("/logout")
def logout():
    staff = current_staff()
    session.pop(STAFF_KEY, None)
    session.pop(SEEN_KEY, None)
    if staff is not None:
        signals.staff_action.send(current_app._get_current_object(), subject=staff.login, actor=staff.login,
                                  details={"action": "logout"})
    return redirect(url_for("admin.login"))


@bp.route("/enrol/<token>", methods=["GET", "POST"])
def enrol(token: str):
    staff = staff_service.for_enrolment(token)
    if staff is None:
        return render_template("admin/enrol_expired.html"), 410
    form = EnrolmentForm()
    message = None
    if request.method == "POST" and form.validate():
        try:
            codes = staff_service.complete_enrolment(staff, form.password.data, form.code.data)
        except staff_service.StaffError as exc:
            message = _message(exc)
        else:
            return render_template("admin/recovery_codes.html", staff=staff, codes=codes)
    qr = segno.make(staff_service.provisioning_uri(staff), error="m").png_data_uri(scale=5, border=2)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/enrol.html", staff=staff, form=form, message=message, qr=qr,
                           secret=staff_service.grouped_secret(staff)), status


@bp.get("/")
@staff_required("dashboard")
def dashboard_page():
    return render_template("admin/dashboard.html", stats=dashboard.stats(), chart=dashboard.hourly_chart_svg())


@bp.app_context_processor
def console_helpers():
    return {"console_staff": current_staff, "can": can, "role_label": lambda r: ROLE_LABELS.get(r, r),
            "url_endpoints": current_app.view_functions}
