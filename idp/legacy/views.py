"""科技部政务服务平台（个人/企业）账号检索 (/account-lookup): what became of a Torch Center account.

Posts ``uscc`` or ``mobile`` with ``captcha``. Every lookup answers a question about accounts,
so each one counts against the address (``LOOKUP_MAX_PER_ADDRESS`` per ``LOOKUP_WINDOW``) and
needs a solved captcha; each is audited (``legacy_lookup``) under a keyed hash of what was
looked up, never the text. The answer is the seed's wording for the case, with the login name
and the login tab to use: nothing else personal.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import Length

from idp import signals
from idp.audit import client_address
from idp.extensions import services
from idp.forms import BaseForm
from idp.accounts.service import FieldError
from idp.accounts.views import field_message
from idp.legacy import service
from idp.login import flow
from idp.login.forms import captcha_field, real_name_forms
from idp.login.views import after_steps
from idp.security import captcha, identifiers
from idp.security.ratelimit import Limit
from idp.verification import service as verification

bp = Blueprint("legacy", __name__)


class LookupForm(BaseForm):
    uscc = StringField(_l("Unified social credit code"), validators=[Length(max=40)],
                       render_kw={"autocomplete": "off", "maxlength": "40",
                                  "placeholder": _l("Units: enter the unified social credit code")})
    mobile = StringField(_l("Mobile phone"), validators=[Length(max=32)],
                         render_kw={"autocomplete": "off", "inputmode": "tel", "maxlength": "32",
                                    "placeholder": _l("Persons: enter the mobile number")})
    captcha = captcha_field()


def _lookups() -> Limit:
    cfg = current_app.config
    return Limit("account_lookup", cfg["LOOKUP_MAX_PER_ADDRESS"], cfg["LOOKUP_WINDOW"])


def _page(form, answer=None, status: int = 200, message: str | None = None, reason: str | None = None):
    form.captcha.data = ""
    return render_template("legacy/lookup.html", form=form, answer=answer, message=message,
                           reason=reason), status


@bp.route("/account-lookup", methods=["GET", "POST"])
def lookup():
    form = LookupForm()
    if request.method == "GET":
        return _page(form)
    address = client_address() or "-"
    limit = _lookups()
    if limit.exceeded(address):
        until = datetime.fromtimestamp(services().clock.time() + limit.retry_after(address), tz=timezone.utc)
        return _page(form, status=429, reason="address_throttled", message=_(
            "Too many look-ups from your network. Please try again after %(until)s.",
            until=format_datetime(until, "yyyy-MM-dd HH:mm:ss")))
    if not form.validate():
        return _page(form, status=400)
    uscc = unicodedata.normalize("NFKC", form.uscc.data or "").strip().upper()
    mobile = (form.mobile.data or "").strip()
    if bool(uscc) == bool(mobile):
        return _page(form, status=400, reason="one_of_uscc_or_mobile", message=_(
            "Enter either the unit's unified social credit code or your mobile number."))
    if captcha.enabled() and not captcha.passes("lookup", form.captcha.data):
        form.error("captcha", _("The captcha is wrong or has expired. Please enter the new one."))
        return _page(form, status=400)
    limit.hit(address)
    if uscc:
        if not identifiers.is_valid_uscc(uscc):
            form.error("uscc", _("Please enter a valid 18-character unified social credit code."))
            return _page(form, status=400)
        answer, kind, key = service.lookup_unit(uscc), "unit", uscc
    else:
        key = identifiers.normalise_mobile(mobile)
        if key is None:
            form.error("mobile", _("Please enter a valid mobile number."))
            return _page(form, status=400)
        answer, kind = service.lookup_person(key), "person"
    signals.legacy_lookup.send(
        current_app._get_current_object(), subject="lookup:" + services().keyring.index(key, "legacy_lookup"),
        details={"kind": kind, "case": answer.case},
    )
    return _page(form, answer=answer)


@bp.route("/login/complete-real-name", methods=["GET", "POST"])
def complete_real_name():
    """Required action: an account imported from a legacy system completes its real-name data
    before its first sign-in finishes; saving runs the automatic verification, as 保存 in the
    user centre does."""
    account = flow.authenticated_account()
    if account is None:
        return redirect(url_for("login.login"))
    if not account.must_complete_real_name:
        return after_steps(account)
    form_class = real_name_forms()[account.account_type]
    if request.method == "GET":
        form = form_class(obj=account)
        return render_template("login/complete_real_name.html", form=form, account=account)
    form = form_class()
    if form.validate():
        fields = {name: f.data for name, f in form._fields.items() if name != "csrf_token"}
        try:
            verification.save_profile(account, fields)
        except FieldError as error:
            form.error(error.field, field_message(error.reason))
        else:
            service.real_name_completed(account)
            return after_steps(account)
    return render_template("login/complete_real_name.html", form=form, account=account), 400
