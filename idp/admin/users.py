"""Console pages for user management: search, one account's page, and the staff actions.

The search form is posted (with its CSRF token) so that a phone number never appears in an
address, a browser history or an access log: a search by phone is answered at once; any other
search is redirected to a plain address (``?kind=…&q=…``) that can be paged and bookmarked.
The rules live in ``user_service``.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange

from idp.accounts.profile import profile_rows
from idp.admin import user_service
from idp.admin.access import current_staff, staff_required
from idp.delegations import service as delegations
from idp.delegations.views import STATES as DELEGATION_STATES
from idp.federation import service as federation
from idp.forms import BaseForm
from idp.models.accounts import ACTIVE, DISABLED, PENDING_REVIEW
from idp.security.pii import mask_phone

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")

KIND_LABELS = {
    "login_name": _l("Login name (exact or beginning)"),
    "name": _l("Name (part)"),
    "uscc": _l("Unified social credit code (exact)"),
    "org_name": _l("Unit name (part)"),
    "phone": _l("Mobile phone (exact)"),
}

MESSAGES = {
    "unknown_kind": _l("Choose what to search by."),
    "query_empty": _l("Enter something to search for."),
    "query_too_long": _l("The search text may be at most 100 characters long."),
    "invalid_phone": _l("Enter a complete mobile number: 11 digits, or + and the country code."),
    "phone_search_by_form": _l(
        "Search by phone with the search form: phone numbers are never put into page addresses."),
    "invalid_characters": _l("The search text contains characters that cannot be accepted."),
    "invalid_minutes": _l("Enter a lock duration between 1 and 43200 minutes."),
    "not_active": _l("Only an active account can be disabled."),
    "not_disabled": _l("Only a disabled account can be enabled."),
    "confirmation_required": _l("Tick the confirmation box to carry out this action."),
    "no_such_link": _l("This link does not exist (any more)."),
}

STATUS_LABELS = {
    ACTIVE: _l("Active"),
    PENDING_REVIEW: _l("Waiting for review"),
    DISABLED: _l("Disabled"),
}

TYPE_LABELS = {"natural": _l("Natural person"), "legal": _l("Legal entity")}


class SearchForm(BaseForm):
    kind = SelectField(_l("Search by"), choices=[SelectChoice(k, v) for k, v in KIND_LABELS.items()],
                       default="login_name")
    q = StringField(_l("Search for"), render_kw={"maxlength": 200, "autocomplete": "off"})


class ConfirmForm(BaseForm):
    confirm = BooleanField(_l("I confirm this action"))


class LockForm(ConfirmForm):
    minutes = IntegerField(_l("Lock for (minutes)"), default=60,
                           validators=[InputRequired(), NumberRange(1, user_service.MAX_LOCK_MINUTES)],
                           render_kw={"min": 1, "max": user_service.MAX_LOCK_MINUTES})


def _message(reason: str) -> str:
    return str(MESSAGES.get(reason, reason))


def _search_page(form: SearchForm, result=None, reason: str | None = None, status: int = 200):
    return render_template("admin/users/index.html", form=form, result=result, reason=reason,
                           message=_message(reason) if reason else None, kind_labels=KIND_LABELS,
                           status_labels=STATUS_LABELS, type_labels=TYPE_LABELS,
                           locked_until=user_service.locked_until, mask_phone=mask_phone), status


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


@bp.route("/", methods=["GET", "POST"])
@staff_required("users.view")
def index():
    if request.method == "POST":
        form = SearchForm()
    else:
        form = SearchForm(formdata=request.args if request.args.get("kind") else None, meta={"csrf": False})
    if request.method == "GET" and not request.args.get("kind"):
        return _search_page(form)
    if not form.validate():
        if form.kind.errors:
            return _search_page(form, reason="unknown_kind", status=400)
        form.q.data = "" if form.kind.data == "phone" else form.q.data
        return _search_page(form, reason="invalid_characters", status=400)
    kind = form.kind.data
    if kind == "phone" and request.method == "GET":
        form.q.data = ""
        return _search_page(form, reason="phone_search_by_form", status=400)
    try:
        result = user_service.search(kind, form.q.data, _page_number() if request.method == "GET" else 1)
    except user_service.UserServiceError as error:
        if kind == "phone":
            form.q.data = ""  # not even an almost-right number goes back to the page
        return _search_page(form, reason=error.reason, status=400)
    if kind == "phone":
        form.q.data = ""
        return _search_page(form, result)
    if request.method == "POST":
        return redirect(url_for("admin_users.index", kind=kind, q=result.query))
    return _search_page(form, result)


def _account_or_404(sub: str):
    account = user_service.account_by_sub(sub)
    if account is None:
        abort(404)
    return account


def _detail_page(account, reason: str | None = None, status: int = 200, lock_form: LockForm | None = None):
    return render_template(
        "admin/users/detail.html", account=account, rows=profile_rows(account),
        locked_until=user_service.locked_until(account), sessions=user_service.active_sessions(account),
        status_labels=STATUS_LABELS, type_labels=TYPE_LABELS, reason=reason,
        message=_message(reason) if reason else None,
        lock_form=lock_form or LockForm(formdata=None),
        delegations=delegations.of_unit(account) if account.is_legal else delegations.of_person(account),
        delegation_state=delegations.state, delegation_states=DELEGATION_STATES, last_day=delegations.last_day,
        upstream_links=federation.links_of(account.id),
    ), status


@bp.get("/<sub>")
@staff_required("users.view")
def detail(sub: str):
    return _detail_page(_account_or_404(sub))


def _when(moment) -> str:
    return format_datetime(moment, "yyyy-MM-dd HH:mm:ss")


def _action(sub: str, run, done_message, form_class=ConfirmForm):
    """The shape every action shares: the account, a confirmed form, the service, a notice."""
    account = _account_or_404(sub)
    form = form_class()
    if not form.validate():
        reason = "invalid_minutes" if getattr(form, "minutes", None) and form.minutes.errors else None
        return _detail_page(account, reason or "confirmation_required", 400,
                            lock_form=form if isinstance(form, LockForm) else None)
    if not form.confirm.data:
        return _detail_page(account, "confirmation_required", 400,
                            lock_form=form if isinstance(form, LockForm) else None)
    try:
        outcome = run(account, form, current_staff().login)
    except user_service.UserServiceError as error:
        return _detail_page(account, error.reason, 400)
    flash(done_message(outcome))
    return redirect(url_for("admin_users.detail", sub=account.sub))


@bp.post("/<sub>/lock")
@staff_required("users.edit")
def lock(sub: str):
    return _action(sub, lambda account, form, actor: user_service.lock(account, form.minutes.data, actor),
                   lambda until: _("The account is locked until %(until)s.", until=_when(until)), LockForm)


@bp.post("/<sub>/unlock")
@staff_required("users.edit")
def unlock(sub: str):
    return _action(sub, lambda account, form, actor: user_service.unlock(account, actor),
                   lambda _outcome: _("The account is unlocked."))


@bp.post("/<sub>/disable")
@staff_required("users.edit")
def disable(sub: str):
    return _action(sub, lambda account, form, actor: user_service.disable(account, actor),
                   lambda ended: _("The account is disabled. Sessions ended: %(count)d.", count=ended))


@bp.post("/<sub>/enable")
@staff_required("users.edit")
def enable(sub: str):
    return _action(sub, lambda account, form, actor: user_service.enable(account, actor),
                   lambda _outcome: _("The account is enabled."))


@bp.post("/<sub>/force-password-change")
@staff_required("users.edit")
def force_password_change(sub: str):
    return _action(sub, lambda account, form, actor: user_service.force_password_change(account, actor),
                   lambda _outcome: _("The user must set a new password at the next sign-in."))


@bp.post("/<sub>/end-sessions")
@staff_required("users.edit")
def end_sessions(sub: str):
    return _action(sub, lambda account, form, actor: user_service.end_all_sessions(account, actor),
                   lambda ended: _("Sessions ended: %(count)d.", count=ended))


@bp.post("/<sub>/upstream-links/<int:link_id>/remove")
@staff_required("users.edit")
def remove_upstream_link(sub: str, link_id: int):
    """Staff remove a national platform link (the person signs in with a password, or recovers
    it); the removal is audited as ``upstream_unlinked`` by staff."""
    def run(account, form, actor):
        try:
            federation.unlink(account, link_id, actor=actor, by_staff=True)
        except federation.LinkRefused as refused:
            raise user_service.UserServiceError(refused.reason) from None

    return _action(sub, run, lambda _outcome: _("The link to the national platform account has been removed."))
