"""Pages of delegation at ``/account/delegations``: for a unit, 用户授权管理 (authorise, list,
edit, revoke); for a natural person, 法人(单位)授权办理情况 (the units that authorised them;
accept, decline). Thin: the rules are idp.delegations.service."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.accounts.views import current_account, login_required
from idp.delegations import service
from idp.delegations.forms import ActionForm, DelegationForm, EditDelegationForm
from idp.extensions import db

bp = Blueprint("delegations", __name__, url_prefix="/account/delegations")

# A message for every reason code of the service; the page carries the code (data-reason).
MESSAGES = {
    "not_a_unit": _l("Only unit accounts can authorise people."),
    "unit_not_verified": _l("Your unit must pass real-name verification before it can authorise people."),
    "person_not_found": _l("No natural-person account matches this login name and name. Please check both."),
    "lookup_throttled": _l("Too many look-ups that found nobody. Please try again in an hour."),
    "no_client": _l("Please choose at least one business system, or all of them."),
    "client_not_delegable": _l("One of the chosen systems does not accept delegation. Nothing was saved."),
    "starts_in_the_past": _l("The start date is in the past. Please choose today or a later day."),
    "ends_in_the_past": _l("The end date is in the past. Please choose today or a later day."),
    "dates_reversed": _l("The end date is before the start date."),
    "invalid_date": _l("Please enter dates as YYYY-MM-DD."),
    "role_too_long": _l("The role may have at most 40 characters."),
    "not_found": _l("This authorisation does not exist."),
    "already_ended": _l("This authorisation has already ended."),
    "not_pending": _l("This authorisation does not wait for your answer."),
}
STATES = {
    "waiting": _l("Waiting for the unit's account"),
    "pending": _l("Waiting for the person's acceptance"),
    "active": _l("In force"),
    "not_started": _l("Not yet in force"),
    "expired": _l("Expired"),
    "unit_inactive": _l("Suspended: the unit is not verified or not active"),
    "declined": _l("Declined"),
    "revoked": _l("Revoked"),
}


def _client_names() -> dict[str, str]:
    return {c.client_id: c.name for c in service.delegable_clients()}


def _refused(error: service.DelegationRefused, template: str, status: int = 400, **context):
    db.session.rollback()
    message = str(MESSAGES.get(error.reason, MESSAGES["not_found"]))
    return render_template(template, message=message, reason=error.reason, **context), status


def _terms(form) -> service.Terms:
    clients = None if form.all_clients.data else tuple(form.client_ids.data or ())
    return service.Terms(clients, form.starts.data, form.ends.data, form.role.data or "")


@bp.get("")
@login_required
def index():
    account = current_account()
    if account.is_legal:
        return _unit_page(account, DelegationForm())
    return _person_page(account)


def _unit_page(unit, form, status: int = 200, **context):
    names = _client_names()
    form.client_ids.choices = list(names.items())
    return render_template("delegations/unit.html", form=form, unit=unit, rows=service.of_unit(unit),
                           client_names=names, state=service.state, states=STATES, may=service.unit_may_delegate(unit),
                           first_day=service.first_day, last_day=service.last_day, action=ActionForm(),
                           **context), status


def _person_page(person, status: int = 200, **context):
    return render_template("delegations/person.html", rows=service.of_person(person), client_names=_client_names(),
                           state=service.state, states=STATES, first_day=service.first_day,
                           last_day=service.last_day, action=ActionForm(), **context), status


@bp.post("")
@login_required
def grant():
    unit = current_account()
    if not unit.is_legal:
        abort(403)
    form = DelegationForm()
    form.client_ids.choices = list(_client_names().items())
    if not form.validate():
        return _unit_page(unit, form, 400, reason="invalid_form")
    try:
        person = service.find_person(unit, form.login_name.data, form.name.data)
        delegation, created = service.grant(unit, person, _terms(form), actor=unit.login_name)
    except service.DelegationRefused as error:
        return _unit_page(unit, form, 400, message=str(MESSAGES.get(error.reason, MESSAGES["not_found"])),
                          reason=error.reason)
    flash(_("The person is authorised. They are told by SMS and accept under My information.") if created
          else _("This person was already authorised by your unit: that authorisation was updated, not duplicated."))
    return redirect(url_for("delegations.index"))


def _own(delegation_id: str, unit):
    delegation = service.find(delegation_id)
    if delegation is None or delegation.unit_id != unit.id:
        abort(404)
    return delegation


@bp.route("/<delegation_id>/edit", methods=["GET", "POST"])
@login_required
def edit(delegation_id: str):
    unit = current_account()
    if not unit.is_legal:
        abort(403)
    delegation = _own(delegation_id, unit)
    form = EditDelegationForm()
    names = _client_names()
    form.client_ids.choices = list(names.items())
    context = {"delegation": delegation, "client_names": names}
    if not form.is_submitted():
        form.all_clients.data = delegation.all_clients
        form.client_ids.data = list(delegation.client_ids)
        form.starts.data = service.first_day(delegation)
        form.ends.data = service.last_day(delegation)
        form.role.data = delegation.role
        return render_template("delegations/edit.html", form=form, **context)
    if not form.validate():
        return render_template("delegations/edit.html", form=form, reason="invalid_form", **context), 400
    try:
        service.change(delegation, _terms(form), actor=unit.login_name)
    except service.DelegationRefused as error:
        return _refused(error, "delegations/edit.html", form=form, **context)
    service.deliver_inline()
    flash(_("The authorisation was changed."))
    return redirect(url_for("delegations.index"))


@bp.post("/<delegation_id>/revoke")
@login_required
def revoke(delegation_id: str):
    unit = current_account()
    if not unit.is_legal or not ActionForm().validate():
        abort(400)
    try:
        service.revoke(_own(delegation_id, unit), unit=unit)
    except service.DelegationRefused as error:
        return _unit_page(unit, DelegationForm(), 400, message=str(MESSAGES.get(error.reason, MESSAGES["not_found"])),
                          reason=error.reason)
    service.deliver_inline()
    flash(_("The authorisation was revoked: the person can no longer act for your unit."))
    return redirect(url_for("delegations.index"))


@bp.post("/<delegation_id>/<answer>")
@login_required
def respond(delegation_id: str, answer: str):
    person = current_account()
    if person.is_legal or answer not in ("accept", "decline") or not ActionForm().validate():
        abort(400 if answer in ("accept", "decline") else 404)
    delegation = service.find(delegation_id)
    try:
        if answer == "accept":
            service.accept(delegation, person)
        else:
            service.decline(delegation, person)
    except service.DelegationRefused as error:
        return _person_page(person, 400, message=str(MESSAGES.get(error.reason, MESSAGES["not_found"])),
                            reason=error.reason)
    service.deliver_inline()
    flash(_("You accepted the authorisation.") if answer == "accept" else _("You declined the authorisation."))
    return redirect(url_for("delegations.index"))
