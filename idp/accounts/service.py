"""Registration and profile changes: the business rules, nothing of HTTP.

Errors are raised as ``FieldError(field, reason)`` with stable reason codes, so every caller
(the pages, the CLI, a later import) reports them at the right field.
"""

from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import signals
from idp.accounts.names import is_valid_login_name, login_name_key, normalise_login_name
from idp.extensions import db, services
from idp.models.accounts import ACTIVE, LEGAL, NATURAL, PENDING_REVIEW, Account
from idp.models.cases import REGISTRATION, ReviewCase
from idp.security import identifiers
from idp.security.passwords import password_problem
from idp.security.sms_codes import check_code

SMS_PURPOSE_REGISTER = "register"


class FieldError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _taken(login_key: str) -> bool:
    return db.session.execute(
        db.select(Account.id).filter_by(login_name_key=login_key)
    ).first() is not None


def _uscc_taken(uscc: str, except_id: int | None = None) -> bool:
    query = db.select(Account.id).filter_by(uscc=uscc)
    if except_id is not None:
        query = query.where(Account.id != except_id)
    return db.session.execute(query).first() is not None


def _index(value: str | None, kind: str) -> str | None:
    return services().keyring.index(value, kind) if value else None


def birth_date_from_resident_id(number: str) -> str | None:
    if identifiers.is_valid_resident_id(number):
        return f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    return None


def create_account(account_type: str, login_name: str, password: str, **profile) -> Account:
    """Create an account after the checks every entry point shares (pages, CLI, seed)."""
    if account_type not in (NATURAL, LEGAL):
        raise FieldError("account_type", "unknown_account_type")
    login_name = normalise_login_name(login_name)
    if not is_valid_login_name(login_name):
        raise FieldError("login_name", "invalid_login_name")
    problem = password_problem(password, login_name)
    if problem:
        raise FieldError("password", problem)
    key = login_name_key(login_name)
    if _taken(key):
        raise FieldError("login_name", "login_name_taken")
    uscc = profile.get("uscc") or None
    if uscc and _uscc_taken(uscc):
        raise FieldError("uscc", "uscc_taken")

    account = Account(
        account_type=account_type,
        login_name=login_name,
        login_name_key=key,
        password_hash=services().passwords.hash(password),
        password_changed_at=services().clock.now(),
        status=PENDING_REVIEW if current_app.config["REGISTRATION_REVIEW"] else ACTIVE,
    )
    _apply_profile(account, profile)
    db.session.add(account)
    try:
        db.session.flush()
        if account.status == PENDING_REVIEW:
            db.session.add(ReviewCase(case_type=REGISTRATION, account_id=account.id,
                                      data={"account_type": account_type}))
        db.session.commit()
    except IntegrityError:
        # Lost a race with a simultaneous registration: report it at the field that clashed.
        db.session.rollback()
        if _taken(key):
            raise FieldError("login_name", "login_name_taken") from None
        if uscc and _uscc_taken(uscc):
            raise FieldError("uscc", "uscc_taken") from None
        raise
    signals.account_registered.send(
        current_app._get_current_object(), subject=account.login_name,
        details={"account_type": account_type, "status": account.status},
    )
    return account


def register(account_type: str, fields: dict, sms_code: str) -> Account:
    """A registration from the public pages: the reserved phone is confirmed by SMS code."""
    key = login_name_key(normalise_login_name(fields["login_name"]))
    if _taken(key):
        raise FieldError("login_name", "login_name_taken")
    if fields.get("uscc") and _uscc_taken(fields["uscc"]):
        raise FieldError("uscc", "uscc_taken")
    problem = check_code(fields["phone"], SMS_PURPOSE_REGISTER, sms_code)
    if problem:
        raise FieldError("sms_code", problem)
    profile = {k: v for k, v in fields.items() if k not in {"login_name", "password"}}
    profile["phone_verified"] = True
    return create_account(account_type, fields["login_name"], fields["password"], **profile)


_PROFILE_FIELDS = {
    NATURAL: ("name", "gender", "ethnicity", "job_title", "birth_date", "email", "landline",
              "identity_region", "document_type", "document_number", "document_valid_until",
              "address", "phone", "phone_verified"),
    LEGAL: ("org_name", "org_kind", "org_region", "uscc", "address", "landline", "name", "email",
            "legal_rep_name", "legal_rep_document_type", "legal_rep_document_number", "phone",
            "phone_verified"),
}

# Personal fields whose edit box starts empty: an empty submission keeps the stored value.
KEEP_WHEN_EMPTY = {"document_number", "legal_rep_document_number", "birth_date", "address", "landline",
                   "email"}


def _apply_profile(account: Account, profile: dict) -> list[str]:
    changed = []
    for name, value in profile.items():
        if name not in _PROFILE_FIELDS[account.account_type]:
            continue
        if isinstance(value, date):
            value = value.isoformat()
        if value == "":
            value = None
        if getattr(account, name) != value:
            setattr(account, name, value)
            changed.append(name)
    account.phone_index = _index(account.phone, "phone")
    account.document_index = _index(account.document_number, "document")
    account.legal_rep_document_index = _index(account.legal_rep_document_number, "document")
    if account.document_type == "resident_id" and account.document_number and not account.birth_date:
        account.birth_date = birth_date_from_resident_id(account.document_number)
    return changed


def update_profile(account: Account, fields: dict) -> list[str]:
    """修改个人信息 / 修改法人信息; returns the names of the fields that changed."""
    fields = {k: v for k, v in fields.items() if not (k in KEEP_WHEN_EMPTY and v in (None, ""))}
    uscc = fields.get("uscc")
    if uscc and uscc != account.uscc and _uscc_taken(uscc, except_id=account.id):
        raise FieldError("uscc", "uscc_taken")
    changed = _apply_profile(account, fields)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise FieldError("uscc", "uscc_taken") from None
    if changed:
        signals.profile_updated.send(
            current_app._get_current_object(), subject=account.login_name,
            details={"fields": sorted(changed)},
        )
    return changed


def change_password(account: Account, new_password: str) -> None:
    """Set a new password (required action, later the user centre and recovery)."""
    problem = password_problem(new_password, account.login_name)
    if problem:
        raise FieldError("password", problem)
    hashing = services().passwords
    if account.password_hash and hashing.verify(account.password_hash, new_password):
        raise FieldError("password", "password_unchanged")
    account.password_hash = hashing.hash(new_password)
    account.password_changed_at = services().clock.now()
    account.must_change_password = False
    db.session.commit()
    signals.password_changed.send(current_app._get_current_object(), subject=account.login_name)
