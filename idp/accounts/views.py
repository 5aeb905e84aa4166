"""Registration (自然人注册 / 单位用户（法人）注册) and the user centre (在线办事 → 我的信息)."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import wraps

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.accounts import service
from idp.accounts.forms import (
    PASSWORD_MESSAGES,
    LegalProfileForm,
    LegalRegistrationForm,
    NaturalProfileForm,
    NaturalRegistrationForm,
    SendCodeForm,
)
from idp.accounts.profile import profile_rows
from idp.audit import client_address
from idp.extensions import services
from idp.security import captcha
from idp.sessions import current_account  # feature views import it from here too
from idp.models.accounts import LEGAL, NATURAL, PENDING_REVIEW
from idp.security.sms_codes import send_code

bp = Blueprint("accounts", __name__)

# A message for every reason code of ``service.REASONS`` (a test keeps it so); anything else
# gets GENERIC_FIELD_MESSAGE, never the raw code.
FIELD_MESSAGES = {
    "unknown_account_type": _l("Please choose the type of account."),
    # The three uniqueness rules are named only after the SMS code was proven (service.register),
    # in words that tell the person what to do without describing someone else's account.
    "login_name_taken": _l("This login name is not available. Please choose another one."),
    "invalid_login_name": _l("A login name has 4–64 letters, digits, Chinese characters or _ . @ -."),
    "uscc_taken": _l("This unified social credit code cannot be used for this account. If your unit has "
                     "registered before, please sign in on the legal-entity tab or recover the password; "
                     "otherwise please contact the help desk."),
    "document_taken": _l("This document cannot be used for this account. If you have registered before, please "
                         "sign in with that account or recover its password; otherwise please contact the help "
                         "desk."),
    "document_number_required": _l("The document type has changed: please enter the document number again."),
    "document_type_region_mismatch": _l("This document type does not fit the identity region."),
    "birth_date_mismatch": _l("The birth date does not match the resident identity card number."),
    "identity_verified_elsewhere": _l("These identity data are already verified on another account. Nothing "
                                      "has been changed; staff have been told and will look into it. "
                                      "If the data are yours, please contact the help desk."),
    "sms_code_missing_or_expired": _l("The SMS code has expired or was not requested. Please request a new one."),
    "sms_code_wrong": _l("The SMS verification code is wrong."),
    **PASSWORD_MESSAGES,
}
# What the page says after 保存, by the automatic verification's outcome.
SAVE_MESSAGES = {
    "matched": _l("Real-name verification passed: the national platform confirmed your data."),
    "not_matched": _l("The national platform could not confirm your data. Please check them; if they are "
                      "right, upload your documents for manual review."),
    "unavailable": _l("The real-name verification service is unavailable at the moment. Your data have been "
                      "saved; the system will try the verification again automatically later, or you may "
                      "save again later."),
}
GENERIC_FIELD_MESSAGE = _l("This value cannot be accepted. Please check it.")


def field_message(reason: str) -> str:
    return str(FIELD_MESSAGES.get(reason, GENERIC_FIELD_MESSAGE))


SEND_MESSAGES = {
    "invalid_phone": _l("Please enter a valid mobile phone number."),
    "captcha_wrong": _l("The captcha is wrong or has expired. Please enter the new one."),
    "resend_too_soon": _l("A code was sent recently. Please wait before requesting another."),
    "phone_daily_cap": _l("This phone has received too many codes today. Please try again tomorrow."),
    "address_cap": _l("Too many codes were requested from your network. Please try again later."),
    "sms_unavailable": _l("The SMS service is unavailable. Please try again later."),
}

# The reason reported for a field of the send-code form that failed its checks.
SEND_FIELD_REASONS = {"phone": "invalid_phone", "captcha": "captcha_wrong"}
SEND_FIELD_ORDER = ["phone", "captcha"]

FORMS = {NATURAL: NaturalRegistrationForm, LEGAL: LegalRegistrationForm}


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_account() is None:
            return redirect(url_for("login.login", next=request.path))
        return view(*args, **kwargs)

    return wrapper


@bp.get("/register")
def register_choice():
    return render_template("accounts/register_choice.html")


@bp.route("/register/<account_type>", methods=["GET", "POST"])
def register(account_type: str):
    if account_type not in FORMS:
        abort(404)
    form = FORMS[account_type]()
    if request.method == "GET":
        return render_template("accounts/register.html", form=form, account_type=account_type)
    address = client_address() or "-"
    wait = service.registration_retry_after(address)
    if wait:
        # Refused before anything is checked, and not counted again: a flood learns nothing.
        until = format_datetime(datetime.fromtimestamp(services().clock.time() + wait, tz=timezone.utc),
                                "yyyy-MM-dd HH:mm:ss")
        message = _("Too many refused registrations from your network. Please try again after %(until)s.",
                    until=until)
        return render_template("accounts/register.html", form=form, account_type=account_type,
                               message=message, reason="registration_throttled"), 429, {"Retry-After": str(wait)}
    if form.validate():
        fields = {name: f.data for name, f in form._fields.items()
                  if name not in {"csrf_token", "password_confirm", "sms_code"}}
        try:
            account = service.register(account_type, fields, form.sms_code.data)
        except service.FieldError as error:
            form.error(error.field, field_message(error.reason))
        else:
            session["registered"] = {"login_name": account.login_name,
                                     "account_type": account.account_type,
                                     "pending": account.status == PENDING_REVIEW}
            return redirect(url_for("accounts.registered"))
    service.count_refused_registration(address)
    return render_template("accounts/register.html", form=form, account_type=account_type), 400


@bp.post("/register/send-code")
def send_registration_code():
    """Sends the code that confirms the reserved phone; gated by the image captcha."""
    return answer_send_code(lambda phone, address: send_code(phone, service.SMS_PURPOSE_REGISTER, address))


def answer_send_code(send):
    """The JSON answer of a 获取验证码 button (registration, password appeals): the phone and
    the image captcha checked, then ``send(phone, address)`` → SendResult."""
    form = SendCodeForm()
    if not form.validate():
        # One reason per field, so that the page marks the right one (SEND_FIELD_REASONS).
        errors = {name: [str(e) for e in f.errors] for name, f in form._fields.items() if f.errors}
        fields = {name: SEND_FIELD_REASONS.get(name, "invalid_input") for name in errors}
        if "captcha" in errors:  # too long, or characters refused: simply a wrong answer
            errors["captcha"] = [str(SEND_MESSAGES["captcha_wrong"])]
        first = next(name for name in SEND_FIELD_ORDER + list(errors) if name in errors)
        return jsonify(ok=False, reason=fields[first], fields=fields, errors=errors,
                       message=errors[first][0]), 400
    if captcha.enabled() and not captcha.passes("sms", form.captcha.data):
        return jsonify(ok=False, reason="captcha_wrong", fields={"captcha": "captcha_wrong"},
                       errors={"captcha": [str(SEND_MESSAGES["captcha_wrong"])]},
                       message=str(SEND_MESSAGES["captcha_wrong"])), 400
    result = send(form.phone.data, client_address() or "-")
    if not result.sent:
        status = 503 if result.reason == "sms_unavailable" else 429
        return jsonify(ok=False, reason=result.reason, retry_after=result.retry_after,
                       message=str(SEND_MESSAGES[result.reason])), status
    return jsonify(ok=True, retry_after=result.retry_after,
                   message=_("A verification code has been sent to your phone."))


@bp.get("/register/done")
def registered():
    info = session.get("registered")
    if not info:
        return redirect(url_for("accounts.register_choice"))
    return render_template("accounts/registered.html", info=info)


@bp.get("/center")
@login_required
def center():
    return redirect(url_for("accounts.profile"))


@bp.get("/center/profile")
@login_required
def profile():
    account = current_account()
    from idp.verification import service as verification

    return render_template("accounts/profile.html", account=account, rows=profile_rows(account),
                           case=verification.latest_case(account))


@bp.route("/center/profile/edit", methods=["GET", "POST"])
@login_required
def edit_profile():
    account = current_account()
    form_class = LegalProfileForm if account.is_legal else NaturalProfileForm
    if request.method == "GET":
        form = form_class(obj=account)
        for name in service.KEEP_WHEN_EMPTY & set(form._fields):
            form[name].data = None
        return render_template("accounts/edit.html", form=form, account=account,
                               rows=dict(profile_rows(account, flat=True)))
    form = form_class()
    if form.validate():
        fields = {name: f.data for name, f in form._fields.items() if name != "csrf_token"}
        from idp.verification import service as verification

        try:
            result = verification.save_profile(account, fields)
        except service.FieldError as error:
            form.error(error.field, field_message(error.reason))
        else:
            flash(_("Your information has been saved."))
            if result.voided:
                flash(_("Your identity data changed during the manual review: that review has been "
                        "withdrawn. Please upload your documents again."))
            flash(str(SAVE_MESSAGES[result.outcome])) if result.outcome in SAVE_MESSAGES else None
            return redirect(url_for("accounts.profile"))
    return render_template("accounts/edit.html", form=form, account=account,
                           rows=dict(profile_rows(account, flat=True))), 400


@bp.get("/recovery")
def recovery():
    """The old address of 忘记密码: the chooser lives at /password/forgot (idp.recovery)."""
    return redirect(url_for("recovery.forgot"), 301)


@bp.app_context_processor
def account_helpers():
    from idp.accounts.profile import verification_label

    return {"verification_label": verification_label}
