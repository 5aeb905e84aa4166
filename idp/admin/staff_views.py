"""Staff management in the console (super administrators): the staff list, new staff members
with a one-time enrolment link, a new link for a lost authenticator, disable / enable."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from idp import signals
from idp.admin import staff as staff_service
from idp.admin.access import ROLE_LABELS, current_staff, staff_required
from idp.extensions import db, services
from idp.forms import BaseForm
from idp.models.staff import ROLES, StaffUser

bp = Blueprint("admin_staff", __name__, url_prefix="/admin/staff")

MESSAGES = {
    "unknown_role": _l("Choose one of the roles."),
    "invalid_login": _l("A staff login name may contain only letters, digits and . _ - @ (at most 64 characters)."),
    "login_taken": _l("This login name is already used by another staff member."),
    "cannot_disable_self": _l("You cannot disable your own account."),
    "cannot_reset_self": _l("You cannot reset your own enrolment: ask another super administrator."),
}


# --- the rules (kept beside the views until idp.admin.staff takes them) ------------------------


def set_disabled(staff: StaffUser, disabled: bool, actor: StaffUser) -> None:
    """Disable or enable a staff member. A disabled member's console session ends at their next
    request (``current_staff`` checks the flag) and they cannot sign in; nobody disables
    themselves, so an enabled super administrator always remains."""
    if staff.id == actor.id:
        raise staff_service.StaffError("cannot_disable_self")
    if staff.disabled == disabled:
        return
    staff.disabled = disabled
    db.session.flush()
    signals.staff_action.send(current_app._get_current_object(), subject=staff.login, actor=actor.login,
                              details={"action": "staff_disabled" if disabled else "staff_enabled"})


def reset_enrolment(staff: StaffUser, actor: StaffUser) -> str:
    """A new enrolment link for someone else (their password, authenticator and recovery
    codes are void until they enrol again); your own would lock you out at once."""
    if staff.id == actor.id:
        raise staff_service.StaffError("cannot_reset_self")
    return staff_service.reset_enrolment(staff, actor.login)


def enrolment_state(staff: StaffUser) -> str:
    """``enrolled``, ``waiting`` (a link is valid) or ``link_expired``."""
    if staff.totp_enabled:
        return "enrolled"
    expires = staff.enrolment_expires_at
    return "waiting" if expires and expires > services().clock.now() else "link_expired"


# --- the pages ---------------------------------------------------------------------------------


class NewStaffForm(BaseForm):
    login = StringField(_l("Login name"), validators=[DataRequired(), Length(max=64)],
                        render_kw={"autocomplete": "off"})
    name = StringField(_l("Name"), validators=[Optional(), Length(max=100)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r, ROLE_LABELS[r]) for r in ROLES],
                       default="support", validators=[DataRequired()])  # the least privilege


def _member_or_404(staff_id: int) -> StaffUser:
    staff = db.session.get(StaffUser, staff_id) if 0 < staff_id < 2**31 else None
    if staff is None:
        abort(404)
    return staff


def _list(form: NewStaffForm, message: str | None = None, reason: str | None = None, status: int = 200):
    members = db.session.execute(db.select(StaffUser).order_by(StaffUser.login)).scalars().all()
    return render_template("admin/staff/index.html", members=members, form=form, message=message,
                           reason=reason, me=current_staff(), enrolment_state=enrolment_state), status


def _link_page(staff: StaffUser, token: str, created: bool):
    return render_template("admin/staff/enrolment_link.html", staff=staff, created=created,
                           url=staff_service.enrolment_url(token),
                           expires_at=staff.enrolment_expires_at)


@bp.get("/")
@staff_required("staff.manage")
def index():
    return _list(NewStaffForm(formdata=None))


@bp.post("/")
@staff_required("staff.manage")
def create():
    form = NewStaffForm()
    if not form.validate():
        return _list(form, status=400)
    try:
        staff, token = staff_service.create(form.login.data, form.role.data, form.name.data or None,
                                            created_by=current_staff().login)
    except staff_service.StaffError as error:
        form.error("role" if error.reason == "unknown_role" else "login", MESSAGES[error.reason])
        return _list(form, MESSAGES[error.reason], error.reason, 400)
    return _link_page(staff, token, created=True)


@bp.post("/<int:staff_id>/reset")
@staff_required("staff.manage")
def reset(staff_id: int):
    staff = _member_or_404(staff_id)
    try:
        token = reset_enrolment(staff, current_staff())
    except staff_service.StaffError as error:
        return _list(NewStaffForm(formdata=None), MESSAGES[error.reason], error.reason, 409)
    return _link_page(staff, token, created=False)


@bp.post("/<int:staff_id>/disable")
@staff_required("staff.manage")
def disable(staff_id: int):
    return _set_disabled(staff_id, True)


@bp.post("/<int:staff_id>/enable")
@staff_required("staff.manage")
def enable(staff_id: int):
    return _set_disabled(staff_id, False)


def _set_disabled(staff_id: int, disabled: bool):
    staff = _member_or_404(staff_id)
    try:
        set_disabled(staff, disabled, current_staff())
    except staff_service.StaffError as error:
        return _list(NewStaffForm(formdata=None), MESSAGES[error.reason], error.reason, 409)
    flash(_("%(login)s has been disabled.", login=staff.login) if disabled
          else _("%(login)s has been enabled.", login=staff.login))
    return redirect(url_for(".index"))
