"""Who may do what in the console. Every view names the permission it needs; roles are sets
of permissions. Support staff only look things up; reviewers never touch clients."""

from __future__ import annotations

from functools import wraps

from flask import abort, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l

from idp.extensions import db, services
from idp.models.staff import StaffUser

PERMISSIONS: dict[str, frozenset[str]] = {
    "superadmin": frozenset({"dashboard", "clients.view", "clients.edit", "users.view", "users.edit",
                             "cases.view", "cases.decide", "audit.view", "staff.manage"}),
    "client_manager": frozenset({"dashboard", "clients.view", "clients.edit"}),
    "reviewer": frozenset({"dashboard", "cases.view", "cases.decide"}),
    "support": frozenset({"dashboard", "users.view", "clients.view", "cases.view", "audit.view"}),
}

ROLE_LABELS = {
    "superadmin": _l("Super administrator"),
    "client_manager": _l("Client manager"),
    "reviewer": _l("Reviewer"),
    "support": _l("Support"),
}

STAFF_KEY = "staff_id"
SEEN_KEY = "staff_seen"


def current_staff() -> StaffUser | None:
    """The signed-in staff member (both factors done, not idle too long, still enabled)."""
    if "staff" not in g:
        g.staff = None
        staff_id = session.get(STAFF_KEY)
        if staff_id:
            from flask import current_app

            now = services().clock.time()
            if now - session.get(SEEN_KEY, 0) > current_app.config["STAFF_SESSION_IDLE"]:
                session.pop(STAFF_KEY, None)
            else:
                staff = db.session.get(StaffUser, staff_id)
                if staff is not None and not staff.disabled and staff.totp_enabled:
                    g.staff = staff
                    if now - session.get(SEEN_KEY, 0) > 60:
                        session[SEEN_KEY] = now
    return g.staff


def can(permission: str) -> bool:
    staff = current_staff()
    return staff is not None and permission in PERMISSIONS.get(staff.role, ())


def staff_required(permission: str):
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if current_staff() is None:
                return redirect(url_for("admin.login", next=request.full_path))
            if not can(permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate
