"""Registration and profile changes: the business rules, nothing of HTTP.

Errors are raised as ``FieldError(field, reason)`` with stable reason codes, so every caller
(the pages, the CLI, a later import) reports them at the right field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import signals
from idp.accounts.choices import REGION_DOCUMENTS
from idp.accounts.names import is_valid_login_name, login_name_key, normalise_login_name
from idp.errors import Refused
from idp.extensions import db, services
from idp.models.accounts import ACTIVE, LEGAL, NATURAL, PENDING_REVIEW, Account
from idp.models.cases import REGISTRATION, ReviewCase
from idp.security import identifiers
from idp.security.passwords import password_problem
from idp.security.ratelimit import Limit
from idp.security.sms_codes import code_rejected, count_failed_use, spend_code, verify_code

SMS_PURPOSE_REGISTER = "register"

# Every reason code a FieldError of this module can carry; the pages have a message for each
# (tests check both directions). Password reasons come from ``password_problem`` and SMS code
# reasons from ``verify_code``.
REASONS = (
    "unknown_account_type", "invalid_login_name", "login_name_taken", "uscc_taken",
    "document_taken", "identity_verified_elsewhere", "document_number_required", "document_type_region_mismatch", "birth_date_mismatch",
    "password_too_short", "password_too_long", "password_too_simple", "password_equals_login_name",
    "password_unchanged", "sms_code_missing_or_expired", "sms_code_wrong",
)


# The uniqueness rules: named only to a caller who has proven the phone's code (``register``).
CLASH_REASONS = ("login_name_taken", "uscc_taken", "document_taken")


class FieldError(Refused):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason, field)


class _CodeSpentMeanwhile(FieldError):
    """The SMS code verified a moment ago was spent by a concurrent registration."""


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


# --- one natural-person account per document ------------------------------------------------
# ``accounts.document_key`` (UNIQUE) is the keyed hash of "type:number" of a natural person's
# document.


def document_key(document_type: str, number: str) -> str:
    normalised = identifiers.normalise_document_number(number)
    return services().keyring.index(f"{document_type}:{normalised}", "document_key")


def _document_owner(key: str, except_id: int | None = None) -> int | None:
    query = sa.select(Account.id).where(Account.document_key == key)
    if except_id is not None:
        query = query.where(Account.id != except_id)
    return db.session.execute(query).scalar()


def _document_taken(key: str | None, except_id: int | None = None) -> bool:
    return key is not None and _document_owner(key, except_id) is not None


def _write_document_key(account: Account, key: str | None) -> None:
    """Within the caller's transaction; a clash raises IntegrityError (the UNIQUE index)."""
    account.document_key = key
    db.session.flush()


# --- look-ups (login, the staff console's user search, password recovery) -----------------

# Built once: every sign-in runs it, and building it cost about half as much as running it.
_BY_LOGIN_NAME = sa.select(Account).where(Account.login_name_key == sa.bindparam("key"))


# Every distinct value of accounts.password_params, as a skip scan of its index: one probe per
# value (a handful), however many accounts there are. Portable: SQLite and PostgreSQL.
_STORED_PASSWORD_PARAMS = sa.text("""
    WITH RECURSIVE seen(params) AS (
        SELECT min(password_params) FROM accounts
        UNION ALL
        SELECT (SELECT min(password_params) FROM accounts WHERE password_params > seen.params)
        FROM seen WHERE seen.params IS NOT NULL
    )
    SELECT params FROM seen WHERE params IS NOT NULL
""")


def stored_password_params() -> list[str]:
    """The parameter sets of the password hashes accounts hold (``passwords.hash_params``):
    what the sign-in's timing floor is made of."""
    return list(db.session.execute(_STORED_PASSWORD_PARAMS).scalars())


def find_account(login_name_key: str) -> Account | None:
    """The account with this case-folded login name (``names.login_name_key``)."""
    return db.session.execute(_BY_LOGIN_NAME, {"key": login_name_key}).scalar_one_or_none()


def find_by_phone(phone: str) -> list[Account]:
    """Every account (either type) whose reserved phone is ``phone``, in any written form
    (+86, spaces, dashes); found through the keyed hash, nothing decrypted."""
    normalised = identifiers.normalise_mobile(phone or "")
    if normalised is None:
        return []
    return list(db.session.execute(
        db.select(Account).filter_by(phone_index=_index(normalised, "phone")).order_by(Account.id)
    ).scalars())


def find_by_document(document_type: str, number: str) -> Account | None:
    """The natural-person account that holds this document (type and number), if any."""
    if not document_type or not number:
        return None
    account_id = _document_owner(document_key(document_type, number))
    return db.session.get(Account, account_id) if account_id is not None else None


def _raise_clash(login_key: str, uscc: str | None, doc_key: str | None) -> None:
    """The first uniqueness rule a new account would break, always in the same order (login
    name, USCC, document), so that the loser of a race hears the same as a late-comer. A
    clash found by a later rule means a competing account committed meanwhile: the earlier
    rules are asked again before answering."""
    rules = [
        ("login_name", "login_name_taken", lambda: _taken(login_key)),
        ("uscc", "uscc_taken", lambda: bool(uscc) and _uscc_taken(uscc)),
        ("document_number", "document_taken", lambda: _document_taken(doc_key)),
    ]
    for position, (_, _, clashes) in enumerate(rules):
        if clashes():
            for field, reason, again in rules[:position + 1]:
                if again():
                    raise FieldError(field, reason)


def _identity_problem(region: str | None, document_type: str | None) -> bool:
    """True when both are given and the document type is not one of the region's."""
    return bool(region and document_type and document_type not in REGION_DOCUMENTS.get(region, set()))


def birth_date_from_resident_id(number: str) -> str | None:
    if identifiers.is_valid_resident_id(number):
        return f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    return None


def create_account(account_type: str, login_name: str, password: str, *,
                   before_commit: Callable[[Account], None] | None = None, **profile) -> Account:
    """Create an account after the checks every entry point shares (pages, CLI, seed).

    ``before_commit`` runs once the row is inserted (so every uniqueness rule has held) and
    before the transaction commits; it may raise FieldError to abandon the account.
    """
    if account_type not in (NATURAL, LEGAL):
        raise FieldError("account_type", "unknown_account_type")
    login_name = normalise_login_name(login_name)
    if not is_valid_login_name(login_name):
        raise FieldError("login_name", "invalid_login_name")
    problem = password_problem(password, login_name)
    if problem:
        raise FieldError("password", problem)
    key = login_name_key(login_name)
    uscc = profile.get("uscc") or None
    doc_key = None
    if account_type == NATURAL:
        if _identity_problem(profile.get("identity_region"), profile.get("document_type")):
            raise FieldError("document_type", "document_type_region_mismatch")
        if profile.get("document_type") and profile.get("document_number"):
            doc_key = document_key(profile["document_type"], profile["document_number"])
    _raise_clash(key, uscc, doc_key)

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
        if doc_key is not None:
            _write_document_key(account, doc_key)
        if account.status == PENDING_REVIEW:
            db.session.add(ReviewCase(case_type=REGISTRATION, account_id=account.id,
                                      data={"account_type": account_type}))
            db.session.flush()
        if before_commit is not None:
            before_commit(account)
    except IntegrityError:
        # Lost a race with a simultaneous registration: report it at the field that clashed.
        # The unit of work is lost with it (the request answers with the refusal).
        db.session.rollback()
        _raise_clash(key, uscc, doc_key)
        raise
    signals.account_registered.send(
        current_app._get_current_object(), subject=account.login_name,
        details={"account_type": account_type, "status": account.status},
    )
    return account


def create_passwordless_account(login_name: str, **profile) -> Account:
    """A natural-person account without a password, made from what another identity provider
    asserted (idp.federation): the same uniqueness rules as ``create_account``; no document
    (an upstream's document number never opens or finds an account here). Only flushes:
    ``account_registered`` is written in the same unit of work."""
    login_name = normalise_login_name(login_name)
    if not is_valid_login_name(login_name):
        raise FieldError("login_name", "invalid_login_name")
    key = login_name_key(login_name)
    _raise_clash(key, None, None)
    account = Account(account_type=NATURAL, login_name=login_name, login_name_key=key, password_hash=None,
                      status=PENDING_REVIEW if current_app.config["REGISTRATION_REVIEW"] else ACTIVE)
    _apply_profile(account, {k: v for k, v in profile.items() if k not in ("document_type", "document_number")})
    db.session.add(account)
    db.session.flush()
    if account.status == PENDING_REVIEW:
        db.session.add(ReviewCase(case_type=REGISTRATION, account_id=account.id, data={"account_type": NATURAL}))
        db.session.flush()
    signals.account_registered.send(
        current_app._get_current_object(), subject=account.login_name,
        details={"account_type": NATURAL, "status": account.status, "origin": "national_platform"},
    )
    return account


def login_name_free(login_name: str) -> bool:
    return not _taken(login_name_key(normalise_login_name(login_name)))


def register(account_type: str, fields: dict, sms_code: str) -> Account:
    """A registration from the public pages: the reserved phone is confirmed by SMS code.

    The code (which only a solved captcha can have sent) is checked before any uniqueness
    rule runs: without it nobody learns whether a login name, USCC or document is taken. A
    clash found with a right code counts as a failed use of that code (``count_failed_use``),
    so one SMS answers at most SMS_CODE_MAX_ATTEMPTS such questions.

    The code is spent only once the account's row is in (every uniqueness rule held), just
    before the commit: whoever loses a race, or meets a duplicate, keeps a code that still
    works. Spending is atomic, so of two registrations with one code only one commits.
    """
    phone = fields["phone"]
    problem = verify_code(phone, SMS_PURPOSE_REGISTER, sms_code)
    if problem:
        raise FieldError("sms_code", problem)

    def spend(account: Account) -> None:
        if not spend_code(phone, SMS_PURPOSE_REGISTER, sms_code):  # used meanwhile by another
            raise _CodeSpentMeanwhile("sms_code", "sms_code_missing_or_expired")

    profile = {k: v for k, v in fields.items() if k not in {"login_name", "password"}}
    profile["phone_verified"] = True
    try:
        return create_account(account_type, fields["login_name"], fields["password"], before_commit=spend,
                              **profile)
    except _CodeSpentMeanwhile as gone:
        # The account is abandoned (the request rolls back); the rejection is kept (idp.unit_of_work).
        code_rejected(phone, SMS_PURPOSE_REGISTER, gone.reason)
        raise FieldError(gone.field, gone.reason) from None
    except FieldError as refused:
        if refused.reason in CLASH_REASONS:
            count_failed_use(phone, SMS_PURPOSE_REGISTER, refused.reason)
        raise


def registration_retry_after(address: str) -> int:
    """Seconds until ``address`` may register again (0: now). Refused registrations are
    counted per client address (``count_refused_registration``): each one answers a
    question (is this code right, is this name or document taken), so a flood of them is
    stopped before it reaches the checks."""
    limit = _refusals_per_address()
    return limit.retry_after(address) if limit.exceeded(address) else 0


def count_refused_registration(address: str) -> None:
    _refusals_per_address().hit(address)


def _refusals_per_address() -> Limit:
    cfg = current_app.config
    return Limit("register_address", cfg["REGISTRATION_MAX_REFUSALS_PER_ADDRESS"], cfg["REGISTRATION_REFUSAL_WINDOW"])


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


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _apply_profile(account: Account, profile: dict) -> list[str]:
    changed = []
    birth_date_before = account.birth_date
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
    if "email" in changed:
        account.email_verified = False  # a new address is confirmed by a code (idp.recovery)
    account.phone_index = _index(account.phone, "phone")
    account.document_index = _index(account.document_number, "document")
    account.legal_rep_document_index = _index(account.legal_rep_document_number, "document")
    if account.document_type == "resident_id" and account.document_number:
        # A mainland resident ID carries the birth date (digits 7-14): it follows the number,
        # whenever the number is set or changed, and is never left contradicting it.
        derived = birth_date_from_resident_id(account.document_number)
        if derived:
            account.birth_date = derived
    if account.birth_date != birth_date_before and "birth_date" not in changed:
        changed.append("birth_date")
    if account.birth_date == birth_date_before and "birth_date" in changed:
        changed.remove("birth_date")
    return changed


def update_profile(account: Account, fields: dict) -> list[str]:
    """修改个人信息 / 修改法人信息; returns the names of the fields that changed.

    Nothing changes when a FieldError is raised.
    """
    fields = {k: v for k, v in fields.items() if not (k in KEEP_WHEN_EMPTY and v in (None, ""))}
    uscc = fields.get("uscc")
    if uscc and uscc != account.uscc and _uscc_taken(uscc, except_id=account.id):
        raise FieldError("uscc", "uscc_taken")
    doc_key = None
    if account.account_type == NATURAL:
        region = fields.get("identity_region", account.identity_region)
        doc_type = fields.get("document_type", account.document_type)
        if _identity_problem(region, doc_type):
            raise FieldError("document_type", "document_type_region_mismatch")
        if doc_type != account.document_type and account.document_number and not fields.get("document_number"):
            # The stored number belongs to the old type: it must be entered for the new one.
            raise FieldError("document_number", "document_number_required")
        number = fields.get("document_number", account.document_number)
        doc_key = document_key(doc_type, number) if doc_type and number else None
        if _document_taken(doc_key, except_id=account.id):
            raise FieldError("document_number", "document_taken")
        typed = fields.get("birth_date")
        derived = birth_date_from_resident_id(number) if doc_type == "resident_id" and number else None
        if typed and derived and _iso(typed) != derived:
            raise FieldError("birth_date", "birth_date_mismatch")
    changed = _apply_profile(account, fields)
    try:
        db.session.flush()
        if account.account_type == NATURAL:
            _write_document_key(account, doc_key)
            db.session.flush()
    except IntegrityError:
        db.session.rollback()
        if uscc and _uscc_taken(uscc, except_id=account.id):
            raise FieldError("uscc", "uscc_taken") from None
        if _document_taken(doc_key, except_id=account.id):
            raise FieldError("document_number", "document_taken") from None
        raise
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
    db.session.flush()
    signals.password_changed.send(current_app._get_current_object(), subject=account.login_name)
