"""The review queue: case types and their handlers; listing, claiming and deciding cases.

Every manual review (registration, real-name verification, password appeals) is one
``ReviewCase``. An area that needs a review opens a case (``open_case``) and registers a
``CaseType`` whose handlers apply the decision to its own data; the queue knows nothing else
of that area. Nothing of HTTP lives here; permissions (``cases.view`` / ``cases.decide``) are
checked by the console before it calls in.

Rules, each refusal a ``CaseError`` with a stable reason code:

- A pending case is held (claimed) by one reviewer at a time. A claim is one conditional
  ``UPDATE … WHERE claimed_by IS NULL OR claimed_by = me OR claimed_at < now - 30 min``, so of
  two reviewers claiming at once exactly one wins; the other gets ``claimed_by_other``.
- A claim lapses after ``CLAIM_IDLE`` without activity: ``claimed_at`` is the holder's last
  activity on the case (claiming it, opening it, deciding it). A lapsed claim may be taken
  over by another reviewer; until someone does, it is still the holder's.
- Only the reviewer named by the claim decides (``not_claimed``, ``claimed_by_other``); a
  rejection needs a reason (``reason_required``, at most ``MAX_REASON`` characters:
  ``reason_too_long``); a decision is final (``already_decided``); a case whose type no handler
  is registered for cannot be decided (``unknown_case_type``), lest a decision do nothing.
- The decision, its timestamps and the handler's effect are one unit of work, and
  ``signals.case_decided`` announces it within that unit (details ``{"action": "case_approved" |
  "case_rejected", "decision", "case_id", "case_type", "account_id", "reason"}``); its
  subscribers are the audit log and the areas' notices (the SMS of real-name verification),
  which idp.notices sends only once the decision is committed.
  Every other step, refused decisions included, is audited through ``signals.staff_action``
  (details ``{"action": "case_claimed" | "case_released" | …, "case_id"}``).
- A case withdrawn by its area without a decision (verification data changed) is ``voided``.
- A case type may offer ``describe_clear``: the data in clear, which the console shows only to
  the reviewer holding the case, auditing each view (``personal_data_viewed``).

Registration review (``REGISTRATION_REVIEW`` on): approval makes the account ``active``;
rejection makes it ``disabled`` and the reviewer's reason stays on the case, where
``rejection_reason`` finds it for the login page. Disabled rather than left ``pending_review``:
a rejected applicant must not be told to keep waiting, and the account must not stay in the
state that the queue and the registration page treat as "under review". The login name stays
taken, as for any disabled account; support can re-enable it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select, update

from idp import signals
from idp.accounts.profile import profile_rows
from idp.errors import Refused
from idp.extensions import db, services
from idp.models import like
from idp.models.accounts import ACTIVE, DISABLED, PENDING_REVIEW, Account
from idp.models.cases import APPROVED, PENDING, REGISTRATION, REJECTED, VOIDED, ReviewCase
from idp.models.staff import StaffUser
from idp.security.pii import mask_date, mask_document, mask_email, mask_phone, mask_text

STATES = (PENDING, APPROVED, REJECTED, VOIDED)
CLAIM_IDLE = timedelta(minutes=30)
# Opening a case one holds counts as activity; written at most this often (seconds).
ACTIVITY_WRITE_INTERVAL = 60
MAX_REASON = 1000
PER_PAGE = 50

REASONS = (
    "claimed_by_other", "not_claimed", "already_decided", "reason_required", "reason_too_long",
    "unknown_case_type",
)

# (field code, label, value shown): the shape of ``idp.accounts.profile.profile_rows``.
Row = tuple[str, Any, str]
Section = tuple[Any, list[Row]]


class CaseError(Refused):
    pass


# --- case types ----------------------------------------------------------------------------


def _nothing(case: ReviewCase) -> None:
    return None


# Submitted-data keys that hold personal data, and the mask each is shown with.
_MASKS: dict[str, Callable[[str | None], str]] = {
    "phone": mask_phone, "mobile": mask_phone, "landline": mask_phone,
    "document_number": mask_document, "legal_rep_document_number": mask_document,
    "email": mask_email, "address": mask_text, "birth_date": mask_date,
}


def describe_data(case: ReviewCase) -> list[Section]:
    """The default rendering of submitted data: every plain value, personal data masked.

    Case types with data of their own register a ``describe`` that labels it properly."""
    rows: list[Row] = []
    for key, value in sorted((case.data or {}).items()):
        if key == "documents" or isinstance(value, (dict, list)):
            continue
        text = "" if value is None else str(value)
        mask = _MASKS.get(key)
        rows.append((key, key, mask(text) if mask else text))
    return [(_l("Submitted data"), rows)] if rows else []


@dataclass(frozen=True)
class Documents:
    """The files a case type keeps with its cases, as the reviewer holding a case opens them.

    ``kinds`` names the documents a case has, each with its label, in the order shown;
    ``fetch`` returns one as ``(bytes, content type)``, or ``None`` when the case has no such
    document (or its file is gone). The console shows them only to the holder of the case and
    audits each view; the content type is sent as is, so ``fetch`` returns only types the
    area produced itself (re-encoded images, not what was uploaded)."""

    kinds: Callable[[ReviewCase], list[tuple[str, Any]]]
    fetch: Callable[[ReviewCase, str], tuple[bytes, str] | None]


@dataclass(frozen=True)
class CaseType:
    """What the queue needs to know of one kind of review: everything, so that it never imports
    the area the review belongs to.

    Adding a kind of review (a password appeal of recovery, a conflict found by a legacy import)
    is, in the area's own module: a case type name in ``idp.models.cases``; the handlers that
    apply the decision to the area's data (``on_approved`` / ``on_rejected``, run in the
    decision's transaction); how the case reads to a reviewer (``describe``, masked, and if
    the reviewer must compare personal data in clear, ``describe_clear``); its uploaded files, if
    any (``documents``); then ``register(CaseType(...))`` from the area's ``init_app``, and
    ``open_case`` where the area decides a person must look. The queue, its filters, claims,
    audit and pages need no change."""

    name: str
    label: Any  # a lazy string
    on_approved: Callable[[ReviewCase], None] = _nothing
    on_rejected: Callable[[ReviewCase], None] = _nothing
    # Sections of (code, label, masked value) rows: what the reviewer is shown.
    describe: Callable[[ReviewCase], list[Section]] = field(default=describe_data)
    # Sections with personal data in clear, for the reviewer holding the case only (audited).
    describe_clear: Callable[[ReviewCase], list[Section]] | None = None
    # Files the reviewer holding the case may open (audited); none if the type keeps none.
    documents: Documents | None = None


_registry: dict[str, CaseType] = {}


def register(case_type: CaseType) -> CaseType:
    _registry[case_type.name] = case_type
    return case_type


def case_types() -> list[CaseType]:
    return list(_registry.values())


def case_type(name: str) -> CaseType | None:
    return _registry.get(name)


def type_label(name: str):
    registered = _registry.get(name)
    return registered.label if registered else name


def describe(case: ReviewCase) -> list[Section]:
    registered = _registry.get(case.case_type)
    return (registered.describe if registered else describe_data)(case)


def document_kinds(case: ReviewCase) -> list[tuple[str, Any]]:
    """(kind, label) of the files the case's type keeps for it; none if it keeps none."""
    registered = _registry.get(case.case_type)
    return registered.documents.kinds(case) if registered and registered.documents else []


def document(case: ReviewCase, kind: str) -> tuple[bytes, str] | None:
    """One of the case's files as ``(bytes, content type)``; ``None`` if there is no such file."""
    registered = _registry.get(case.case_type)
    if registered is None or registered.documents is None:
        return None
    if kind not in {known for known, _ in registered.documents.kinds(case)}:
        return None
    return registered.documents.fetch(case, kind)


def documents(case: ReviewCase) -> list[str]:
    """Names of the documents submitted with the case (``data["documents"]``: names, or
    objects with a ``name``). The files themselves come with the upload issue."""
    names = []
    for item in (case.data or {}).get("documents") or []:
        name = item.get("name") if isinstance(item, dict) else item
        if name:
            names.append(str(name))
    return names


def open_case(case_type_name: str, account_id: int | None = None, data: dict | None = None) -> ReviewCase:
    """A new pending case, added to the caller's transaction (the caller commits)."""
    case = ReviewCase(case_type=case_type_name, account_id=account_id, data=data or {}, state=PENDING)
    db.session.add(case)
    db.session.flush()
    return case


# --- reading the queue ---------------------------------------------------------------------


@dataclass
class CasePage:
    items: list[tuple[ReviewCase, Account | None]]
    total: int
    page: int
    pages: int


def _now():
    return services().clock.now()


def _claim_cutoff():
    return _now() - CLAIM_IDLE


def _filtered(query, case_type: str | None, state: str | None, claimed_by: str | None,
              unclaimed: bool, text: str | None):
    if case_type:
        query = query.where(ReviewCase.case_type == case_type)
    if state:
        query = query.where(ReviewCase.state == state)
    if claimed_by:
        query = query.where(ReviewCase.claimed_by == claimed_by)
    if unclaimed:
        query = query.where(ReviewCase.state == PENDING, or_(
            ReviewCase.claimed_by.is_(None), ReviewCase.claimed_at.is_(None),
            ReviewCase.claimed_at < _claim_cutoff()))
    text = (text or "").strip()
    if text:
        matches = [like.contains(Account.login_name, text), like.contains(Account.name, text),
                   like.contains(Account.org_name, text), Account.uscc == text.upper()]
        number = text.lstrip("#")
        if number.isdigit() and len(number) <= 9:
            matches.append(ReviewCase.id == int(number))
        query = query.where(or_(*matches))
    return query


def list_cases(case_type: str | None = None, state: str | None = None, claimed_by: str | None = None,
               unclaimed: bool = False, text: str | None = None, page: int = 1,
               per_page: int = PER_PAGE) -> CasePage:
    """Cases with their accounts. Filters: type, state, the claiming reviewer's login,
    ``unclaimed`` (pending and held by nobody, or by a lapsed claim), and ``text`` (a part of
    the login name, name or unit name, the USCC, or the case number). Pending cases oldest
    first (a queue); decided ones newest first."""
    def joined(query):
        query = query.outerjoin(Account, Account.id == ReviewCase.account_id)
        return _filtered(query, case_type, state, claimed_by, unclaimed, text)

    total = db.session.execute(joined(select(func.count(ReviewCase.id)).select_from(ReviewCase))).scalar_one()
    base = joined(select(ReviewCase, Account))
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    order = ((ReviewCase.created_at, ReviewCase.id) if state == PENDING
             else (ReviewCase.id.desc(),))
    rows = db.session.execute(base.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
    return CasePage([(case, account) for case, account in rows], total, page, pages)


def counts(login: str, case_type: str | None = None) -> dict[str, int]:
    """Figures for the queue's header: cases per state, pending ones held by nobody, and
    pending ones held by ``login``."""
    def count(**filters) -> int:
        query = _filtered(select(func.count(ReviewCase.id)), case_type, filters.get("state"),
                          filters.get("claimed_by"), filters.get("unclaimed", False), None)
        return db.session.execute(query).scalar_one()

    figures = {state: count(state=state) for state in STATES}
    figures["unclaimed"] = count(unclaimed=True)
    figures["mine"] = count(state=PENDING, claimed_by=login)
    return figures


def get(case_id: int) -> ReviewCase | None:
    if not isinstance(case_id, int) or not 0 < case_id < 2**31:
        return None
    return db.session.get(ReviewCase, case_id)


def account_of(case: ReviewCase) -> Account | None:
    return db.session.get(Account, case.account_id) if case.account_id else None


def account_to_decide(case: ReviewCase) -> Account | None:
    """The case's account as the database has it now, locked until the decision commits (on
    PostgreSQL): a decision acts on the current row, never on a copy read earlier in this
    session, and a change made meanwhile by the user (which voids the case) waits for it."""
    if not case.account_id:
        return None
    return db.session.get(Account, case.account_id, populate_existing=True, with_for_update=True)


def active_holder(case: ReviewCase) -> str | None:
    """The login of the reviewer whose claim has not lapsed, if any."""
    if case.state != PENDING or not case.claimed_by or case.claimed_at is None:
        return None
    return case.claimed_by if case.claimed_at >= _claim_cutoff() else None


def claim_status(case: ReviewCase, login: str) -> str:
    """``mine`` (``login`` holds it, and may decide it), ``other`` (another reviewer's claim
    has not lapsed), ``free`` (anyone may claim it) or ``decided``."""
    if case.state != PENDING:
        return "decided"
    if case.claimed_by == login:
        return "mine"
    return "other" if active_holder(case) else "free"


def claim_expires_at(case: ReviewCase):
    return case.claimed_at + CLAIM_IDLE if case.claimed_at else None


def rejection_reason(account: Account) -> str | None:
    """The reviewer's reason for the latest rejected registration of this account (what the
    login page shows a disabled applicant)."""
    return db.session.execute(
        select(ReviewCase.reason)
        .where(ReviewCase.account_id == account.id, ReviewCase.case_type == REGISTRATION,
               ReviewCase.state == REJECTED)
        .order_by(ReviewCase.decided_at.desc(), ReviewCase.id.desc()).limit(1)
    ).scalar()


# --- claiming and deciding -----------------------------------------------------------------


def _audit(action: str, case: ReviewCase, staff: StaffUser, outcome: str = "success", **details) -> None:
    # In the decision's transaction; a refusal (outcome "refused") is kept although the request
    # rolls back (idp.unit_of_work).
    signals.staff_action.send(
        current_app._get_current_object(), subject=f"case:{case.id}", actor=staff.login, outcome=outcome,
        details={"action": action, "case_id": case.id, "case_type": case.case_type, **details},
    )


def _refusal(case: ReviewCase, login: str) -> str:
    """Why a conditional update did not touch the case (read as stored now: the update
    touched no row, so nothing of this unit is in it)."""
    db.session.refresh(case)
    if case.state != PENDING:
        return "already_decided"
    if case.claimed_by and case.claimed_by != login:
        return "claimed_by_other"
    return "not_claimed"


def _refuse(action: str, case: ReviewCase, staff: StaffUser, reason: str) -> CaseError:
    _audit(action, case, staff, outcome="refused", reason=reason)
    return CaseError(reason)


def _held_by(login: str):
    return (ReviewCase.state == PENDING, ReviewCase.claimed_by == login)


def claim(case: ReviewCase, staff: StaffUser) -> ReviewCase:
    """Take the case for ``staff``: free, already theirs, or held by a lapsed claim."""
    now = _now()
    previous = case.claimed_by if case.claimed_by != staff.login else None
    result = db.session.execute(
        update(ReviewCase)
        .where(ReviewCase.id == case.id, ReviewCase.state == PENDING, or_(
            ReviewCase.claimed_by.is_(None), ReviewCase.claimed_by == staff.login,
            ReviewCase.claimed_at.is_(None), ReviewCase.claimed_at < now - CLAIM_IDLE))
        .values(claimed_by=staff.login, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _refuse("case_claimed", case, staff, _refusal(case, staff.login))
    db.session.flush()
    db.session.refresh(case)
    details = {"taken_over_from": previous} if previous else {}
    _audit("case_claimed", case, staff, **details)
    return case


def release(case: ReviewCase, staff: StaffUser) -> ReviewCase:
    """Give the case back to the queue; only its holder can."""
    result = db.session.execute(
        update(ReviewCase).where(ReviewCase.id == case.id, *_held_by(staff.login))
        .values(claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _refuse("case_released", case, staff, _refusal(case, staff.login))
    db.session.flush()
    db.session.refresh(case)
    _audit("case_released", case, staff)
    return case


def note_activity(case: ReviewCase, staff: StaffUser) -> None:
    """The holder is working on the case: push its claim's lapse back (not audited)."""
    now = _now()
    if case.state != PENDING or case.claimed_by != staff.login:
        return
    if case.claimed_at and (now - case.claimed_at).total_seconds() < ACTIVITY_WRITE_INTERVAL:
        return
    result = db.session.execute(
        update(ReviewCase).where(ReviewCase.id == case.id, *_held_by(staff.login))
        .values(claimed_at=now).execution_options(synchronize_session=False)
    )
    db.session.flush()
    if result.rowcount:
        db.session.refresh(case)


def approve(case: ReviewCase, staff: StaffUser, reason: str | None = None) -> ReviewCase:
    """Approve; the reason is optional here (a note for the record)."""
    return _decide(case, staff, APPROVED, reason)


def reject(case: ReviewCase, staff: StaffUser, reason: str | None) -> ReviewCase:
    """Reject; the reason is required (the applicant is shown it)."""
    return _decide(case, staff, REJECTED, reason)


def _decide(case: ReviewCase, staff: StaffUser, decision: str, reason: str | None) -> ReviewCase:
    action = "case_approved" if decision == APPROVED else "case_rejected"
    if case.state != PENDING:
        raise _refuse(action, case, staff, "already_decided")
    handler_type = _registry.get(case.case_type)
    if handler_type is None:
        raise _refuse(action, case, staff, "unknown_case_type")
    reason = (reason or "").strip() or None
    if decision == REJECTED and not reason:
        raise CaseError("reason_required")
    if reason and len(reason) > MAX_REASON:
        raise CaseError("reason_too_long")
    now = _now()
    result = db.session.execute(
        update(ReviewCase).where(ReviewCase.id == case.id, *_held_by(staff.login))
        .values(state=decision, reviewer=staff.login, reason=reason, decided_at=now, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _refuse(action, case, staff, _refusal(case, staff.login))
    db.session.expire(case)
    (handler_type.on_approved if decision == APPROVED else handler_type.on_rejected)(case)
    db.session.flush()
    signals.case_decided.send(
        current_app._get_current_object(), subject=f"case:{case.id}", actor=staff.login,
        details={"action": action, "decision": decision, "case_id": case.id, "case_type": case.case_type,
                 "account_id": case.account_id, "reason": reason},
    )
    return case


# --- registration review ---------------------------------------------------------------------


def _approve_registration(case: ReviewCase) -> None:
    account = account_to_decide(case)
    if account is not None and account.status == PENDING_REVIEW:
        account.status = ACTIVE


def _reject_registration(case: ReviewCase) -> None:
    account = account_to_decide(case)
    if account is not None and account.status == PENDING_REVIEW:
        account.status = DISABLED


def describe_account(case: ReviewCase) -> list[Section]:
    """The applicant's account data, masked: how a case about an account reads by default."""
    account = account_of(case)
    if account is None:
        return [(_l("Applicant"), [("account", _l("Account"), str(_l("The account no longer exists.")))])]
    return profile_rows(account)


REGISTRATION_REVIEW = CaseType(
    name=REGISTRATION,
    label=_l("Registration review"),
    on_approved=_approve_registration,
    on_rejected=_reject_registration,
    describe=describe_account,
)


def init_app(app) -> None:
    """The queue's own case type, registration review (the areas register theirs)."""
    register(REGISTRATION_REVIEW)
