"""The pages of password recovery (忘记密码): the chooser, 登录名重置密码 (SMS code or e-mail
link), 申诉找回密码 for persons and units, and the e-mail confirmation of the user centre.
The rules live in ``idp.recovery.service``; this module maps requests to it and its reason codes
to messages, and commits once per request."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.accounts.views import FIELD_MESSAGES, SEND_MESSAGES, answer_send_code, current_account, login_required
from idp.audit import client_address
from idp.login import flow
from idp.login.views import safe_return_to
from idp.models.accounts import LEGAL, NATURAL
from idp.recovery import service
from idp.recovery.forms import (
    EmailCodeForm, EmailResetForm, LegalAppealForm, LinkResetForm, LookupForm, NaturalAppealForm, PhoneResetForm,
    SendResetCodeForm, UnitLookupForm,
)
from idp.security import captcha
from idp.security.pii import mask_email
from idp.verification.images import MAX_BYTES
from idp.verification.views import MESSAGES as DOCUMENT_MESSAGES

bp = Blueprint("recovery", __name__)

STATE = "recovery"  # session: the step-1 target and where to go afterwards
UNIT = "appeal_unit"  # session: the unit name of 检索单位名称

MESSAGES = {
    "lookup_throttled": _l("Too many look-ups from your network. Please try again later."),
    "details_or_code_wrong": _l("The information does not match our records, or the verification code is wrong "
                                "or has expired. Please check and try again."),
    "account_disabled": _l("This account has been disabled and its password cannot be recovered online. "
                           "Please contact the technical support line 010-88659000."),
    "mail_off": _l("E-mail is not available on this platform. Please use the reserved mobile phone."),
    "mail_unavailable": _l("The e-mail service is unavailable. Nothing was sent; please try again later."),
    "mail_cap": _l("This e-mail address has received too many messages today. Please try again tomorrow."),
    "address_cap": SEND_MESSAGES["address_cap"],
    "link_invalid": _l("This link is not valid. Please request a new one."),
    "link_expired": _l("This link has expired. Please request a new one."),
    "link_used_or_replaced": _l("This link has been used already or a newer link was sent. Please use the newest "
                                "link or request a new one."),
    "appeal_open": _l("An appeal for this account is already under review. Please wait for its outcome, "
                      "which you will receive by SMS."),
    "too_many_appeals": _l("Too many appeals in a short time. Please wait a minute and try again."),
    "email_missing": _l("Please enter an e-mail address in your personal information first."),
    "email_already_confirmed": _l("This e-mail address is confirmed already."),
    "sms_unavailable": SEND_MESSAGES["sms_unavailable"],
    "resend_too_soon": SEND_MESSAGES["resend_too_soon"],
    "phone_daily_cap": SEND_MESSAGES["phone_daily_cap"],
}
CODE_SENT = _l("If the information matches the account, a verification code has been sent to the reserved "
               "mobile phone. It is valid for 5 minutes.")
LINK_SENT = _l("If the information matches the account, a link to reset the password has been sent to the "
               "reserved e-mail address. It is valid for 30 minutes and can be used once.")


def _address() -> str:
    return client_address() or "-"


def _message(reason: str) -> str:
    return str(MESSAGES.get(reason) or FIELD_MESSAGES.get(reason) or DOCUMENT_MESSAGES.get(reason)
               or _("This value cannot be accepted. Please check it."))


def _throttled_page(template: str, error: service.RecoveryError, **context):
    return render_template(template, message=_message(error.reason), reason=error.reason, **context), \
        429, {"Retry-After": str(error.retry_after or 60)}


# --- 选择找回密码方式 --------------------------------------------------------------------------


@bp.get("/password/forgot")
def forgot():
    back = safe_return_to(request.args.get("next")) or (session.get(flow.FLOW_KEY) or {}).get("return_to")
    if back:
        session["recovery_return_to"] = back
    return render_template("recovery/forgot.html")


# --- 登录名重置密码 -----------------------------------------------------------------------------


def _target() -> service.Target | None:
    state = session.get(STATE)
    if not state:
        return None
    return service.Target(state["account_type"], state["login_name"])


@bp.route("/password/reset", methods=["GET", "POST"])
def reset():
    if request.method == "GET":
        if request.args.get("restart"):
            session.pop(STATE, None)
        target = _target()
        if target is None:
            form = LookupForm()
            if request.args.get("account_type") in ("natural", "legal"):
                form.account_type.data = request.args["account_type"]
            return render_template("recovery/lookup.html", form=form)
        return _step_two(target, request.args.get("method", "phone"))
    if "login_name" in request.form:
        return _look_up()
    target = _target()
    if target is None:
        return redirect(url_for("recovery.reset"))
    method = request.form.get("method", "phone")
    if method == "email":
        return _send_link(target)
    if "send_code" in request.form:
        return _send_code(target)
    return _reset_by_code(target)


def _refused_look_up(form, template: str):
    """The checks of a 检索 step (检索登录名, 检索单位名称): the form, the captcha, the per-address
    throttle. The page to answer with, or None to go on."""
    if not form.validate():
        return render_template(template, form=form), 400
    if captcha.enabled() and not captcha.passes("recovery", form.captcha.data):
        form.error("captcha", _("The captcha is wrong or has expired. Please enter the new one."))
        form.captcha.data = ""
        return render_template(template, form=form), 400
    try:
        service.look_up(_address())
    except service.RecoveryError as error:
        return _throttled_page(template, error, form=form)
    return None


def _look_up():
    form = LookupForm()
    refused = _refused_look_up(form, "recovery/lookup.html")
    if refused is not None:
        return refused
    # Whether or not such an account exists: the next step is the same page.
    session[STATE] = {"account_type": form.account_type.data, "login_name": form.login_name.data}
    return redirect(url_for("recovery.reset"))


def _step_two(target, method="phone", form=None, message=None, reason=None, notice=None, status=200):
    if method not in service.METHODS or (method == "email" and not service.mail_enabled()):
        method = "phone"
    if form is None:
        form = EmailResetForm() if method == "email" else PhoneResetForm(login_name=target.login_name)
    return render_template("recovery/reset.html", form=form, target=target, method=method, message=message,
                           reason=reason, notice=notice, mail_enabled=service.mail_enabled()), status


def _send_code(target):
    form = SendResetCodeForm()
    page_form = PhoneResetForm(login_name=target.login_name)
    page_form.new_password.data = page_form.new_password_confirm.data = ""  # never echoed
    if not form.validate():
        for name in ("phone", "phone_confirm"):
            for error in form[name].errors:
                page_form.error(name, error)
        return _step_two(target, form=page_form, status=400)
    result = service.send_reset_code(target, form.phone.data, form.org_name.data, form.uscc.data, _address())
    if not result.sent:
        status = 503 if result.reason == "sms_unavailable" else 429
        return _step_two(target, form=page_form, message=_message(result.reason), reason=result.reason,
                         status=status)
    return _step_two(target, form=page_form, notice=str(CODE_SENT))


def _reset_by_code(target):
    form = PhoneResetForm(login_name=target.login_name)
    if not form.validate():
        return _step_two(target, form=form, status=400)
    try:
        account = service.reset_by_code(target, form.phone.data, form.org_name.data, form.uscc.data,
                                        form.new_password.data, form.sms_code.data)
    except service.FieldProblem as problem:
        form.error(problem.field, _message(problem.reason))
        return _step_two(target, form=form, status=400)
    except service.RecoveryError as error:
        if error.reason == "account_disabled":
            return _disabled()
        return _step_two(target, form=form, message=_message(error.reason), reason=error.reason, status=400)
    service.after_recovery(account, "sms", form.reason.data or "")
    return _finished(account.account_type)


def _send_link(target):
    form = EmailResetForm()
    if not form.validate():
        return _step_two(target, "email", form=form, status=400)
    try:
        service.send_reset_link(target, form.email.data, form.org_name.data, form.uscc.data, form.reason.data or "",
                                _address(), lambda token: url_for("recovery.reset_link", token=token, _external=True))
    except service.RecoveryError as error:
        status = 503 if error.reason in ("mail_unavailable", "mail_off") else 429
        return _step_two(target, "email", form=form, message=_message(error.reason), reason=error.reason,
                         status=status)
    return _step_two(target, "email", form=form, notice=str(LINK_SENT))


@bp.route("/password/reset/mail/<token>", methods=["GET", "POST"])
def reset_link(token: str):
    try:
        link = service.open_link(token)
    except service.RecoveryError as error:
        if error.reason == "account_disabled":
            return _disabled()
        return render_template("recovery/link_invalid.html", message=_message(error.reason),
                               reason=error.reason), 410 if error.reason != "link_invalid" else 404
    form = LinkResetForm(login_name=link.account.login_name)
    if request.method == "GET" or not form.validate():
        return render_template("recovery/link.html", form=form, account=link.account), \
            200 if request.method == "GET" else 400
    try:
        link = service.reset_by_link(token, form.new_password.data)
    except service.FieldProblem as problem:
        form.error(problem.field, _message(problem.reason))
        return render_template("recovery/link.html", form=form, account=link.account), 400
    except service.RecoveryError as error:
        return render_template("recovery/link_invalid.html", message=_message(error.reason),
                               reason=error.reason), 410
    service.after_recovery(link.account, "email", link.reason)
    return _finished(link.account.account_type)


def _disabled():
    session.pop(STATE, None)
    return render_template("recovery/disabled.html", message=_message("account_disabled"),
                           reason="account_disabled"), 403


def _finished(account_type: str):
    session.pop(STATE, None)
    session["recovery_done"] = account_type
    return redirect(url_for("recovery.finished"))


@bp.get("/password/reset/done")
def finished():
    account_type = session.get("recovery_done")
    if not account_type:
        return redirect(url_for("recovery.forgot"))
    back = session.get("recovery_return_to")
    # 确定，并跳转至政务服务平台: back to the relying party through a new sign-in, or the portal.
    onward = url_for("login.login", type=account_type, next=back) if back else url_for("portal.services")
    return render_template("recovery/finished.html", onward=onward)


# --- 申诉找回密码 ---------------------------------------------------------------------------------


@bp.route("/password/appeal", methods=["GET", "POST"])
def appeal():
    account_type = request.values.get("account_type", NATURAL)
    if account_type not in (NATURAL, LEGAL):
        abort(404)
    if account_type == LEGAL:
        return _unit_appeal()
    form = NaturalAppealForm()
    if request.method == "GET":
        return _appeal_page(NATURAL, form)
    return _submit_appeal(NATURAL, form)


def _appeal_page(account_type, form, errors=None, message=None, reason=None, status=200, unit=None):
    kinds = service.APPEAL_DOCUMENTS[account_type]
    from idp.verification.service import DOCUMENT_LABELS

    return render_template("recovery/appeal.html", form=form, account_type=account_type, errors=errors or {},
                           kinds=[(kind, DOCUMENT_LABELS[kind]) for kind in kinds], message=message, reason=reason,
                           unit=unit), status


def _unit_appeal():
    if request.method == "GET":
        if request.args.get("restart"):
            session.pop(UNIT, None)
        unit = session.get(UNIT)
        if unit is None:
            return render_template("recovery/appeal_lookup.html", form=UnitLookupForm())
        form = LegalAppealForm()
        form.org_name.data = unit
        return _appeal_page(LEGAL, form, unit=unit)
    if "captcha" in request.form and "uscc" not in request.form:  # 检索单位名称
        form = UnitLookupForm()
        refused = _refused_look_up(form, "recovery/appeal_lookup.html")
        if refused is not None:
            return refused
        session[UNIT] = form.org_name.data.strip()
        return redirect(url_for("recovery.appeal", account_type=LEGAL))
    unit = session.get(UNIT)
    if unit is None:
        return redirect(url_for("recovery.appeal", account_type=LEGAL))
    form = LegalAppealForm()
    form.org_name.data = unit
    return _submit_appeal(LEGAL, form, unit=unit)


def _submit_appeal(account_type, form, unit=None):
    if not form.validate():
        return _appeal_page(account_type, form, status=400, unit=unit)
    files = {}
    for kind in service.APPEAL_DOCUMENTS[account_type]:
        storage = request.files.get(kind)
        if storage is not None and storage.filename:
            files[kind] = (storage.filename, storage.stream.read(MAX_BYTES + 1))
    fields = {name: f.data for name, f in form._fields.items() if name not in ("csrf_token", "sms_code")}
    try:
        case = service.submit_appeal(account_type, fields, files, form.sms_code.data, _address())
    except service.FieldProblem as problem:
        if problem.field in service.APPEAL_DOCUMENTS[account_type]:
            return _appeal_page(account_type, form, errors={problem.field: _message(problem.reason)}, status=400,
                                unit=unit)
        form.error(problem.field, _message(problem.reason))
        return _appeal_page(account_type, form, status=400, unit=unit)
    except service.RecoveryError as error:
        status = 429 if error.reason == "too_many_appeals" else 409
        return _appeal_page(account_type, form, message=_message(error.reason), reason=error.reason,
                            status=status, unit=unit)
    session.pop(UNIT, None)
    session["appeal_submitted"] = case.id
    return redirect(url_for("recovery.appeal_submitted"))


@bp.post("/password/appeal/send-code")
def appeal_send_code():
    return answer_send_code(service.send_appeal_code)


@bp.get("/password/appeal/submitted")
def appeal_submitted():
    if not session.get("appeal_submitted"):
        return redirect(url_for("recovery.forgot"))
    return render_template("recovery/appeal_submitted.html")


# --- the user centre: confirming the e-mail address ----------------------------------------


@bp.route("/center/email", methods=["GET", "POST"])
@login_required
def confirm_email():
    account = current_account()
    form = EmailCodeForm()
    message = notice = reason = None
    status = 200
    if request.method == "POST" and account.email_verified:
        return redirect(url_for("recovery.confirm_email"))  # nothing left to do here
    if request.method == "POST" and form.validate():
        try:
            if "send_code" in request.form:
                service.send_email_code(account, _address())
                notice = _("A verification code has been sent to your e-mail address. It is valid for 5 minutes.")
            else:
                if not form.email_code.data:
                    form.error("email_code", _("Please enter the verification code."))
                    raise service.FieldProblem("email_code", "missing")
                service.confirm_email(account, form.email_code.data)
                flash(_("Your e-mail address is confirmed."))
                return redirect(url_for("accounts.profile"))
        except service.FieldProblem as problem:
            if problem.reason != "missing":
                form.error("email_code", _message(problem.reason))
            status = 400
        except service.RecoveryError as error:
            message, reason = _message(error.reason), error.reason
            status = 503 if error.reason in ("mail_unavailable", "mail_off") else 429 \
                if error.reason.endswith("_cap") else 400
    elif request.method == "POST":
        status = 400
    return render_template("recovery/confirm_email.html", form=form, account=account,
                           email=mask_email(account.email) if account.email else None, message=message,
                           notice=notice, reason=reason, mail_enabled=service.mail_enabled()), status

