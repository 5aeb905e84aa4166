"""Staff accounts: one-time enrolment links, password + mandatory TOTP, recovery codes.

TOTP (RFC 6238, pyotp) accepts the current step and one either side for clock drift, and never
the same step twice for one account (§5.2), so an observed code cannot be replayed. Recovery
codes are ten random single-use codes, stored as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

import pyotp
from flask import current_app

from idp import signals
from idp.audit import unknown_name
from idp.login import handlers
from idp.errors import Refused
from idp.extensions import db, services
from idp.models.staff import ROLES, StaffUser
from idp.security.passwords import password_problem
from idp.security.ratelimit import Lockout

TOTP_ISSUER = "科技部政务服务平台"
RECOVERY_CODES = 10


class StaffError(Refused, ValueError):
    def __init__(self, reason: str, until: datetime | None = None) -> None:
        super().__init__(reason)
        self.until = until


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _staff_lockout() -> Lockout:
    return Lockout.for_sign_in("staff_login", "staff", current_app.config)


def _unknown_names() -> Lockout:
    """Names that match no staff member: counted and locked with the same thresholds, under
    the name's keyed hash, and consulted only while no staff member holds the name."""
    return Lockout.for_sign_in("staff_name", "staff_name", current_app.config)


def _normalise(login: str) -> str:
    return (login or "").strip().lower()


def find(login: str) -> StaffUser | None:
    return db.session.execute(db.select(StaffUser).filter_by(login=_normalise(login))).scalar_one_or_none()


def create(login: str, role: str, name: str | None = None, created_by: str = "cli") -> tuple[StaffUser, str]:
    """A staff account waiting for enrolment, and the one-time token of its enrolment link."""
    login = login.strip().lower()
    if role not in ROLES:
        raise StaffError("unknown_role")
    if not login or len(login) > 64 or not all(c.isalnum() or c in "._-@" for c in login):
        raise StaffError("invalid_login")
    if find(login) is not None:
        raise StaffError("login_taken")
    staff = StaffUser(login=login, role=role, name=name, created_by=created_by)
    token = _new_enrolment(staff)
    db.session.add(staff)
    db.session.flush()
    signals.staff_action.send(current_app._get_current_object(), subject=login, actor=created_by,
                              details={"action": "staff_created", "role": role})
    return staff, token


def _new_enrolment(staff: StaffUser) -> str:
    token = secrets.token_urlsafe(32)
    staff.enrolment_token_hash = _hash(token)
    staff.enrolment_expires_at = services().clock.now() + timedelta(
        seconds=current_app.config["STAFF_ENROLMENT_TTL"])
    staff.totp_secret = pyotp.random_base32()
    staff.totp_enabled = False
    staff.totp_last_step = None
    return token


def reset_enrolment(staff: StaffUser, actor: str) -> str:
    """A new enrolment link (lost phone): password and TOTP are set again."""
    token = _new_enrolment(staff)
    staff.password_hash = None
    staff.recovery_codes = None
    db.session.flush()
    signals.staff_action.send(current_app._get_current_object(), subject=staff.login, actor=actor,
                              details={"action": "enrolment_reset"})
    return token


def enrolment_url(token: str) -> str:
    return f"{current_app.config['ISSUER']}/admin/enrol/{token}"


def for_enrolment(token: str) -> StaffUser | None:
    if not token or len(token) > 100:
        return None
    staff = db.session.execute(
        db.select(StaffUser).filter_by(enrolment_token_hash=_hash(token))
    ).scalar_one_or_none()
    if staff is None or staff.disabled or staff.enrolment_expires_at <= services().clock.now():
        return None
    return staff


def provisioning_uri(staff: StaffUser) -> str:
    return pyotp.TOTP(staff.totp_secret).provisioning_uri(name=staff.login, issuer_name=TOTP_ISSUER)


def grouped_secret(staff: StaffUser) -> str:
    secret = staff.totp_secret or ""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def complete_enrolment(staff: StaffUser, password: str, code: str) -> list[str]:
    """Set the password, confirm the authenticator with a first code; return the recovery
    codes (shown once)."""
    problem = password_problem(password, staff.login)
    if problem:
        raise StaffError(problem)
    if not _accept_totp(staff, code):
        raise StaffError("totp_wrong")
    codes = [f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}" for _ in range(RECOVERY_CODES)]
    staff.password_hash = services().passwords.hash(password)
    staff.recovery_codes = [_hash(c) for c in codes]
    staff.totp_enabled = True
    staff.enrolment_token_hash = None
    staff.enrolment_expires_at = None
    db.session.flush()
    signals.staff_enrolled.send(current_app._get_current_object(), subject=staff.login, actor=staff.login)
    return codes


def _accept_totp(staff: StaffUser, code: str) -> bool:
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6) or not staff.totp_secret:
        return False
    totp = pyotp.TOTP(staff.totp_secret)
    now = datetime.fromtimestamp(services().clock.time(), tz=timezone.utc)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if staff.totp_last_step is not None and step <= staff.totp_last_step:
                return False  # replayed within its window
            staff.totp_last_step = step
            return True
    return False


def locked_until(staff: StaffUser) -> datetime | None:
    return _staff_lockout().locked_until(str(staff.id))


def _failed(staff: StaffUser | None, login: str, reason: str) -> StaffError:
    """Count the failure (the member's, or the unknown name's) and announce it; the audit
    log names an unknown name only by its keyed hash."""
    login = _normalise(login)
    subject = staff.login if staff is not None else unknown_name(login)
    signals.staff_login_failed.send(current_app._get_current_object(), subject=subject, outcome="failure",
                                    details={"reason": reason})
    until = (_staff_lockout().fail(str(staff.id)) if staff is not None
             else _unknown_names().fail(unknown_name(login)))
    if until is not None:
        return StaffError("account_locked", until)
    return StaffError(reason)


def check_password(login: str, password: str, address: str = "-") -> StaffUser:
    """First factor. Raises StaffError(address_throttled | account_locked | invalid_credentials
    | not_enrolled).

    The same door as the citizens' sign-in: failures per client address are counted with
    theirs (``handlers.address_throttled_until``), and a name that matches no staff member,
    or a disabled one, is answered like a wrong password for an enrolled one, after the same
    argon2 check against the dummy hash, with the same counters and lock."""
    if (until := handlers.address_throttled_until(address)) is not None:
        raise StaffError("address_throttled", until)
    staff = find(login)
    until = (locked_until(staff) if staff is not None
             else _unknown_names().locked_until(unknown_name(_normalise(login))))
    if until is not None:
        raise StaffError("account_locked", until)
    ok = services().passwords.verify(staff.password_hash if staff else None, password)
    if not ok or staff is None or staff.disabled:
        handlers.count_address_failure(address)
        raise _failed(staff, login, "invalid_credentials")
    if not staff.totp_enabled:
        raise StaffError("not_enrolled")
    return staff


def check_second_factor(staff: StaffUser, code: str) -> str:
    """TOTP code or a recovery code; returns the method used. Raises StaffError."""
    if (until := locked_until(staff)):
        raise StaffError("account_locked", until)
    code = (code or "").strip().lower()
    if _accept_totp(staff, code):
        method = "totp"
    elif _hash(code) in (staff.recovery_codes or []):
        staff.recovery_codes = [h for h in staff.recovery_codes if h != _hash(code)]
        method = "recovery_code"
    else:
        raise _failed(staff, staff.login, "totp_wrong")
    staff.last_login_at = services().clock.now()
    db.session.flush()
    _staff_lockout().clear_failures(str(staff.id))
    signals.staff_login_succeeded.send(current_app._get_current_object(), subject=staff.login,
                                       actor=staff.login, details={"method": method})
    return method
