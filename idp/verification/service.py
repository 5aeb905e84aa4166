"""Real-name verification (实名认证): the rules, nothing of HTTP.

Statuses (``Account.verification_status``, INTERFACES.md): ``unverified`` → ``verified_auto``
(the national platform confirmed the data saved in 修改个人信息 / 修改法人信息) or →
``pending`` (documents submitted through 上传自然人信息 / 上传法人信息) → ``verified_manual`` or
``rejected`` (with the reviewer's reason). Rules:

- The status follows the data (issue 12): a commit that changes an identity field
  (``IDENTITY_FIELDS``) of a verified or pending account makes it ``unverified`` in the same
  transaction, whoever writes it (user centre, console, CLI, import) and whatever a verifier
  says afterwards. A session listener (``_follow_the_data``) enforces it, so no write path can
  forget it; only a write that sets the status itself in the same flush (a verification of the
  new data) keeps what it set.
- Saving the profile then runs the automatic check when the identity data changed or the
  account is not verified yet. A match makes it ``verified_auto``; a mismatch, an unknown
  identity or an unavailable verifier leaves it unverified (the data are saved; the user is
  told to try later when the verifier did not answer).
- Changing identity data while a review is pending voids the case (state ``voided``, its
  documents deleted) and the account is ``unverified`` again: new uploads are needed (the
  seed's note 2).
- Once verified (``verified_auto`` / ``verified_manual``) the upload page is read-only.
- Identity data already verified on another account (a natural person's document, a unit's
  USCC): nothing of this account changes, the user gets a clear message and staff get an
  ``identity_conflict`` case.
- What was verified (name and birth date, or unit name and USCC) is kept encrypted in
  ``verified_data``; ``verified_claims`` asserts exactly that, and names what checked it
  (``verification_method``: the verifier's ``method`` — ``national_platform`` for the national
  interface, ``local_check_digits`` / ``local_registry`` for the development verifier — or
  ``document_review``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from idp import cases, jobs, notices, signals, unit_of_work
from idp.accounts import service as accounts
from idp.errors import Refused
from idp.extensions import db, services
from idp.models.accounts import (
    LEGAL, NATURAL, UNVERIFIED, VERIFICATION_PENDING, VERIFICATION_REJECTED, VERIFIED_AUTO,
    VERIFIED_MANUAL, VERIFIED_STATUSES, ACTIVE, Account,
)
from idp.models.cases import IDENTITY_CONFLICT, PENDING, VERIFICATION, VOIDED, ReviewCase
from idp.security.ratelimit import Limit
from idp.services.verifier import MATCH, VerifierUnavailable
from idp.verification.images import DocumentRejected, clean_image

# verification_method: what checked the data (the verifier's ``method``, or the review).
NATIONAL_PLATFORM = "national_platform"
LOCAL_CHECK_DIGITS = "local_check_digits"
LOCAL_REGISTRY = "local_registry"
DOCUMENT_REVIEW = "document_review"
# The person signed in through the national platform, which said they are verified
# (idp.federation): its word, with the upstream as evidence.
UPSTREAM_NATIONAL = "upstream_national"
AUTOMATIC_METHODS = (NATIONAL_PLATFORM, LOCAL_CHECK_DIGITS, LOCAL_REGISTRY, UPSTREAM_NATIONAL)

# The data whose change needs a new verification: what a verifier or a reviewer compares, and
# what the claims assert (a legal account's ``name`` is its authorised contact, not verified).
IDENTITY_FIELDS = {
    NATURAL: {"name", "identity_region", "document_type", "document_number", "birth_date"},
    LEGAL: {"org_name", "org_region", "org_kind", "uscc", "legal_rep_name", "legal_rep_document_type",
            "legal_rep_document_number"},
}
# The documents each account type uploads, in the order of the page.
DOCUMENT_KINDS = {NATURAL: ("id_front", "id_back"), LEGAL: ("business_licence", "authorisation_letter")}
DOCUMENT_LABELS = {
    "id_front": _l("ID card, front"),
    "id_back": _l("ID card, back"),
    "business_licence": _l("Business licence"),
    "authorisation_letter": _l("Authorisation letter"),
}

# What a verification (or its loss) writes on the account.
_VERIFICATION_COLUMNS = ("verification_status", "verification_method", "verification_reference", "verified_at",
                         "verification_reason", "verified_data")

# Reason codes of VerificationError (the pages have a message for each).
REASONS = ("already_verified", "too_many_uploads", "identity_incomplete")

# Outcomes of saving the profile, for the message the page shows.
MATCHED, NOT_MATCHED, UNAVAILABLE, INCOMPLETE, UNCHANGED = (
    "matched", "not_matched", "unavailable", "incomplete", "unchanged")


class VerificationError(Refused):
    def __init__(self, reason: str, retry_after: int = 0) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DocumentError(Refused):
    """One uploaded file was refused; ``field`` is its kind."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason, field)


@dataclass
class SaveResult:
    changed: list[str]
    outcome: str
    voided: bool = False


def _app():
    return current_app._get_current_object()


def is_verified(account: Account) -> bool:
    return account.verification_status in VERIFIED_STATUSES


def upload_limit() -> Limit:
    return Limit("document_upload", current_app.config["UPLOAD_MAX_PER_MINUTE"], 60)


# --- what was verified ---------------------------------------------------------------------


def _identity_of(account: Account) -> dict:
    if account.is_legal:
        return {"org_name": account.org_name, "uscc": account.uscc}
    return {"name": account.name, "birthdate": account.birth_date}


def verified_data(account: Account) -> dict | None:
    if not is_verified(account) or not account.verified_data:
        return None
    try:
        return json.loads(account.verified_data)
    except ValueError:
        return None


def _mark_verified(account: Account, status: str, method: str, reference: str | None) -> None:
    account.verification_status = status
    account.verification_method = method
    account.verification_reference = reference
    account.verified_at = services().clock.now()
    account.verification_reason = None
    account.verified_data = json.dumps(_identity_of(account), ensure_ascii=False)


def mark_verified_by_upstream(account: Account, issuer: str) -> None:
    """The upstream provider (the national platform) vouches for the account's person: the
    account becomes ``verified_auto`` with the upstream named as evidence (``verified_claims``).
    The caller flushes and commits."""
    _mark_verified(account, VERIFIED_AUTO, UPSTREAM_NATIONAL, issuer[:100])


def _clear_verified(account: Account, status: str = UNVERIFIED) -> None:
    account.verification_status = status
    account.verification_method = None
    account.verification_reference = None
    account.verified_at = None
    account.verified_data = None


# --- the status follows the data -----------------------------------------------------------

_RESETS = "idp.verification_reset"


def changed_identity_fields(account: Account) -> list[str]:
    """The identity fields of ``account`` set to another value since its last flush."""
    state = inspect(account)
    changed = []
    for name in sorted(IDENTITY_FIELDS.get(account.account_type, ())):
        history = state.attrs[name].history
        if history.has_changes() and list(history.deleted or [None]) != list(history.added or [None]):
            changed.append(name)
    return changed


def _follow_the_data(session: Session, flush_context, instances) -> None:
    """Before every flush: a verified or pending account whose identity data changed is
    unverified in the same transaction (the claims can never assert the old data of a new
    identity), unless this flush sets the status itself."""
    for account in session.dirty:
        if not isinstance(account, Account):
            continue
        before = account.verification_status
        if before not in (*VERIFIED_STATUSES, VERIFICATION_PENDING):
            continue
        if inspect(account).attrs.verification_status.history.has_changes():
            continue
        fields = changed_identity_fields(account)
        if fields:
            _clear_verified(account)
            session.info.setdefault(_RESETS, []).append((account.login_name, before, fields))


def _announce_resets(session: Session, flush_context) -> None:
    """The audit entry joins the flush's transaction: a rollback takes both away."""
    for login_name, before, fields in session.info.pop(_RESETS, None) or ():
        signals.verification_voided.send(
            _app(), subject=login_name,
            details={"why": "identity_data_changed", "status_before": before, "fields": fields})


def _forget_resets(session: Session, previous_transaction) -> None:
    session.info.pop(_RESETS, None)


def _listen_to_sessions() -> None:
    # First among the before_flush listeners: the caches (idp.models.changes) must see the
    # status change this one makes.
    listeners = (("before_flush", _follow_the_data, {"insert": True}),
                 ("after_flush_postexec", _announce_resets, {}), ("after_soft_rollback", _forget_resets, {}))
    for name, listener, options in listeners:
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener, **options)


# --- the automatic path --------------------------------------------------------------------


def _complete(account: Account) -> bool:
    if account.is_legal:
        return bool(account.org_name and account.uscc)
    return bool(account.name and account.document_type and account.document_number)


def verify_automatically(account: Account) -> str:
    """Ask the verifier about the account's saved data and apply the answer. Only a
    match changes the status (a verified account whose data changed is already unverified).
    An unavailable verifier queues a retry (``RETRY_JOB``) that asks again later about the same
    data; an answer makes a waiting retry pointless."""
    if not _complete(account):
        return INCOMPLETE
    try:
        verdict = _ask(account)
    except VerifierUnavailable as exc:
        _unavailable(account, exc)
        _queue_retry(account)
        return UNAVAILABLE
    _forget_retry(account)
    return _apply(account, verdict)


def _ask(account: Account):
    verifier = services().verifier
    if account.is_legal:
        return verifier.verify_unit(account.org_name, account.uscc, account.legal_rep_name)
    return verifier.verify_person(account.name, account.document_type, account.document_number)


def _unavailable(account: Account, exc: Exception, **extra) -> None:
    signals.verification_checked.send(_app(), subject=account.login_name, outcome="failure",
                                      details={"result": "unavailable", "error": str(exc)[:200], **extra})


def _apply(account: Account, verdict, **extra) -> str:
    """The verifier's answer, the same whoever asked (the save, the CLI, a retry)."""
    before = account.verification_status
    if verdict.result == MATCH:
        _mark_verified(account, VERIFIED_AUTO, services().verifier.method, verdict.reference)
    db.session.flush()
    signals.verification_checked.send(
        _app(), subject=account.login_name, outcome="success" if verdict.result == MATCH else "failure",
        details={"result": verdict.result, "status_before": before, "status": account.verification_status, **extra},
    )
    return MATCHED if verdict.result == MATCH else NOT_MATCHED


# --- asking again later (the verifier was unavailable) ------------------------------------

RETRY_JOB = "verification.retry"
# The statuses a save asks the verifier for, and a retry still may act on.
_ASKING_STATUSES = (UNVERIFIED, VERIFICATION_REJECTED)


def identity_fingerprint(account: Account) -> str:
    """A keyed digest (the personal-data index key) of the account's identity data: the retry
    checks the data are still those the verifier could not be asked about, without the job
    holding them."""
    fields = IDENTITY_FIELDS[account.account_type]
    data = {name: None if getattr(account, name) is None else str(getattr(account, name)) for name in sorted(fields)}
    text = json.dumps([account.account_type, data], ensure_ascii=False, sort_keys=True)
    return services().keyring.index(text, "verification_retry")


def _about(account_id: int) -> str:
    return f"account:{account_id}"


def _queue_retry(account: Account) -> None:
    """One waiting retry per account: a newer one replaces it (idp.jobs, ``about``). Never run in
    the request: the verifier has just been asked there (with its own in-call retries)."""
    jobs.add(RETRY_JOB, {"account_id": account.id, "fingerprint": identity_fingerprint(account)},
             about=_about(account.id), run_after=services().clock.now() + jobs.first_backoff())


def _forget_retry(account: Account) -> None:
    jobs.supersede(RETRY_JOB, _about(account.id))


def _still_waiting(account: Account | None, fingerprint: str) -> bool:
    return (account is not None and account.status == ACTIVE and account.verification_status in _ASKING_STATUSES
            and _complete(account) and identity_fingerprint(account) == fingerprint)


def retry(payload: dict) -> None:
    """The job: ask the verifier again, if the account is still active, still not verified (nor
    under review) and holds the same identity data as when the retry was queued; otherwise do
    nothing. The answer is applied as the save applies it (``_apply``: the same status, audit
    event and signals), after the account is read again under a row lock: a save or a decision
    made while the verifier was asked wins, and the answer is dropped. Unavailable again: raised,
    the queue retries with backoff."""
    account = db.session.get(Account, int(payload["account_id"]))
    fingerprint = payload["fingerprint"]
    if not _still_waiting(account, fingerprint):
        return
    try:
        verdict = _ask(account)
    except VerifierUnavailable as exc:
        _unavailable(account, exc, retried=True)
        raise
    db.session.refresh(account, with_for_update=True)
    if not _still_waiting(account, fingerprint):
        return
    _apply(account, verdict, retried=True)


def _retry_subject(payload: dict) -> str | None:
    account = db.session.get(Account, int(payload["account_id"]))
    return account.login_name if account is not None else None


def _verified_owner(account: Account, error: accounts.FieldError, fields: dict) -> Account | None:
    """The other, verified account that holds the identity data this save tried to take."""
    if error.reason == "uscc_taken":
        other = db.session.execute(select(Account).where(Account.uscc == fields.get("uscc"),
                                                         Account.id != account.id)).scalar()
    else:
        doc_type = fields.get("document_type") or account.document_type
        number = fields.get("document_number") or account.document_number
        other = accounts.find_by_document(doc_type, number) if doc_type and number else None
    return other if other is not None and other.id != account.id and is_verified(other) else None


def _open_conflict(account: Account, other: Account, field: str) -> None:
    """The case for staff, kept although the refused save rolls back (idp.unit_of_work.keep)."""
    account_id, data = account.id, {"field": field, "other_account_id": other.id,
                                    "other_login_name": other.login_name,
                                    "other_status": other.verification_status}

    def open_once() -> None:
        already = db.session.execute(select(ReviewCase.id).where(
            ReviewCase.case_type == IDENTITY_CONFLICT, ReviewCase.state == PENDING,
            ReviewCase.account_id == account_id)).first()
        if already is None:
            cases.open_case(IDENTITY_CONFLICT, account_id, data)
            db.session.flush()

    unit_of_work.keep(open_once)
    signals.identity_conflict.send(_app(), subject=account.login_name, outcome="refused",
                                   details={"field": field, "other_account_id": other.id})


def save_profile(account: Account, fields: dict) -> SaveResult:
    """修改个人信息 / 修改法人信息 → 保存: the change (``accounts.service.update_profile``), then,
    when due, the automatic verification. FieldError as from ``update_profile``, plus
    ``identity_verified_elsewhere``."""
    # The status as the database has it now, the row locked until this save commits (on
    # PostgreSQL): a decision or a verification retry committed since the account was read is
    # seen (and the status follows the data from there), one still applying its answer is
    # waited for. Only these columns are read again: what the caller set on the account stays.
    db.session.refresh(account, attribute_names=_VERIFICATION_COLUMNS, with_for_update=True)
    try:
        changed = accounts.update_profile(account, fields)
    except accounts.FieldError as error:
        if error.reason in ("document_taken", "uscc_taken"):
            other = _verified_owner(account, error, fields)
            if other is not None:
                _open_conflict(account, other, error.field)
                raise accounts.FieldError(error.field, "identity_verified_elsewhere") from None
        raise
    identity_changed = bool(set(changed) & IDENTITY_FIELDS[account.account_type])
    voided = False
    if identity_changed:  # the status is unverified already (_follow_the_data); the case goes too
        voided = void_pending(account, "identity_data_changed")
    if identity_changed or account.verification_status in (UNVERIFIED, VERIFICATION_REJECTED):
        return SaveResult(changed, verify_automatically(account), voided)
    return SaveResult(changed, UNCHANGED, voided)


# --- the manual path -----------------------------------------------------------------------


def pending_case(account: Account) -> ReviewCase | None:
    return db.session.execute(
        select(ReviewCase).where(ReviewCase.case_type == VERIFICATION, ReviewCase.state == PENDING,
                                 ReviewCase.account_id == account.id).order_by(ReviewCase.id.desc()).limit(1)
    ).scalar()


def latest_case(account: Account) -> ReviewCase | None:
    return db.session.execute(
        select(ReviewCase).where(ReviewCase.case_type == VERIFICATION, ReviewCase.account_id == account.id)
        .order_by(ReviewCase.id.desc()).limit(1)
    ).scalar()


def _delete_documents_once_committed(case: ReviewCase) -> None:
    """The case's stored documents go when the unit that stops referring to them commits."""
    storage = services().documents
    keys = [item["key"] for item in (case.data or {}).get("documents") or []
            if isinstance(item, dict) and item.get("key")]
    unit_of_work.after_commit(lambda: [storage.delete(key) for key in keys])


def void_pending(account: Account, why: str) -> bool:
    """Withdraw the pending review (the data under review changed); its documents are deleted
    once that is committed."""
    case = pending_case(account)
    if case is None:
        return False
    case.state = VOIDED
    case.reason = why
    case.decided_at = services().clock.now()
    account.verification_status = UNVERIFIED
    db.session.flush()
    _delete_documents_once_committed(case)
    signals.verification_voided.send(_app(), subject=account.login_name,
                                     details={"case_id": case.id, "why": why})
    return True


def submit_documents(account: Account, files: dict[str, tuple[str | None, bytes]]) -> ReviewCase:
    """上传自然人信息 / 上传法人信息 → 提交: every required photo, checked and re-encoded, stored
    encrypted; opens the review case (replacing a pending one). Nothing is stored unless all
    files pass."""
    if is_verified(account):
        raise VerificationError("already_verified")
    limit = upload_limit()
    ident = str(account.id)
    if limit.exceeded(ident):
        raise VerificationError("too_many_uploads", limit.retry_after(ident))
    limit.hit(ident)  # every submission counts: each one decodes images and writes files
    if not _complete(account):
        raise VerificationError("identity_incomplete")
    cleaned = {}
    for kind in DOCUMENT_KINDS[account.account_type]:
        filename, data = files.get(kind) or (None, b"")
        try:
            cleaned[kind] = clean_image(data, filename)
        except DocumentRejected as rejected:
            raise DocumentError(kind, rejected.reason) from None
    previous = pending_case(account)
    if previous is not None:
        void_pending(account, "resubmitted")
    storage = services().documents
    documents = []
    for kind, (data, content_type) in cleaned.items():
        documents.append({"name": kind, "kind": kind, "key": storage.put(data), "content_type": content_type,
                          "size": len(data)})
    try:
        case = cases.open_case(VERIFICATION, account.id, {"account_type": account.account_type,
                                                           "documents": documents})
        account.verification_status = VERIFICATION_PENDING
        account.verification_reason = None
        db.session.flush()
    except BaseException:
        for item in documents:
            storage.delete(item["key"])
        raise
    signals.verification_submitted.send(_app(), subject=account.login_name,
                                        details={"case_id": case.id, "documents": list(cleaned)})
    return case


def document_of(case: ReviewCase, kind: str) -> tuple[bytes, str] | None:
    for item in (case.data or {}).get("documents") or []:
        if isinstance(item, dict) and item.get("kind") == kind and item.get("key"):
            try:
                return services().documents.get(item["key"]), item.get("content_type") or "image/jpeg"
            except KeyError:
                return None
    return None


def document_kinds(case: ReviewCase) -> list[str]:
    return [item["kind"] for item in (case.data or {}).get("documents") or []
            if isinstance(item, dict) and item.get("kind")]


# --- the review (case type handlers) -------------------------------------------------------


def _approve(case: ReviewCase) -> None:
    account = cases.account_to_decide(case)
    if account is not None and account.verification_status == VERIFICATION_PENDING:
        _mark_verified(account, VERIFIED_MANUAL, DOCUMENT_REVIEW, f"case-{case.id}")


def _reject(case: ReviewCase) -> None:
    account = cases.account_to_decide(case)
    if account is not None and account.verification_status == VERIFICATION_PENDING:
        _clear_verified(account, VERIFICATION_REJECTED)
        account.verification_reason = case.reason


def _describe_clear(case: ReviewCase):
    """What the holder of the case sees: the identity data in clear (the console audits it)."""
    account = cases.account_of(case)
    if account is None:
        return cases.describe_account(case)
    if account.is_legal:
        rows = [("org_name", _l("Unit name"), account.org_name), ("uscc", _l("Unified social credit code"),
                account.uscc), ("legal_rep_name", _l("Legal representative"), account.legal_rep_name),
                ("legal_rep_document_number", _l("Document number"), account.legal_rep_document_number),
                ("name", _l("Authorised person"), account.name)]
    else:
        rows = [("name", _l("Name"), account.name), ("document_type", _l("Document type"), account.document_type),
                ("document_number", _l("Document number"), account.document_number),
                ("birth_date", _l("Birth date"), account.birth_date)]
    return [(_l("Identity data under review (clear)"), rows)]


def _document_labels(case: ReviewCase) -> list[tuple[str, Any]]:
    return [(kind, DOCUMENT_LABELS.get(kind, kind)) for kind in document_kinds(case)]


CASE_TYPES = (
    cases.CaseType(
        name=VERIFICATION, label=_l("Real-name verification review"), on_approved=_approve,
        on_rejected=_reject, describe=cases.describe_account, describe_clear=_describe_clear,
        documents=cases.Documents(kinds=_document_labels, fetch=document_of),
    ),
    cases.CaseType(name=IDENTITY_CONFLICT, label=_l("Identity data verified on another account")),
)


# --- the outcome by SMS (a subscriber of case_decided) -----------------------------------


def _notify(sender, details=None, **_):
    details = details or {}
    if details.get("case_type") != VERIFICATION or not details.get("account_id"):
        return
    account = db.session.get(Account, details["account_id"])
    if account is None or not account.phone:
        return
    approved = details.get("decision") == "approved"
    template = "verification_approved" if approved else "verification_rejected"
    params = {} if approved else {"reason": (details.get("reason") or "")[:200]}
    notices.sms(account.login_name, account.phone, template, params)


def install() -> None:
    """Registers verification with the rest of the provider (idempotent: once per process is
    enough, every create_app calls it)."""
    for case_type in CASE_TYPES:
        cases.register(case_type)
    jobs.register(RETRY_JOB, retry, subject=_retry_subject)
    _listen_to_sessions()
    signals.case_decided.connect(_notify, weak=False)
