"""Password recovery (密码找回): the rules, nothing of HTTP.

Three ways (PRODUCT.md §4, docs/recovery.md):

- 登录名重置密码 by SMS: login name (+ captcha, throttled per address) → the reserved phone
  twice (units: also unit name and USCC), reason, new password twice, the SMS code → reset.
  The code goes out only when everything typed matches the account, but the answer is the same
  either way, and takes the same time (``RECOVERY_ANSWER_FLOOR``); a wrong code, a mismatch or
  an expired code are one answer (``details_or_code_wrong``). Only the holder of the reserved
  phone ever learns something about the account — that it is disabled, for instance.
- 登录名重置密码 by e-mail: the confirmed e-mail twice instead of the phone → a signed link
  (single use, at most 30 minutes; a newer link voids older ones) → the new password.
- 申诉找回密码: an appeal with document photos, a case of the review queue (``PASSWORD_APPEAL``);
  approval sends a temporary password by SMS that must be changed at the next sign-in.

After any recovery (``after_recovery``): the lock ends, every session ends, refresh tokens are
revoked, access tokens and codes die by the account's cut-off, the relying parties get a
back-channel logout, the reserved phone and the confirmed e-mail are told, and nothing signs
the user in. Service functions only flush; the caller commits, then calls ``after_recovery``.
"""

from __future__ import annotations

import functools
import json
import secrets
import string
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from flask import current_app, g
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from idp import cases, jobs, notices, signals, unit_of_work
from idp.accounts import service as accounts
from idp.accounts.names import login_name_key, normalise_login_name
from idp.errors import Refused
from idp.extensions import db, services
from idp.login import handlers
from idp.models.accounts import DISABLED, LEGAL, NATURAL, Account
from idp.models.cases import PASSWORD_APPEAL, PENDING, ReviewCase
from idp.oauth import sessions as sso_sessions
from idp.security import identifiers, sms_codes
from idp.security.cut_offs import cut_off_account
from idp.security.passwords import password_problem
from idp.security.pii import mask_document, mask_email, mask_phone
from idp.security.ratelimit import Limit
from idp.services.mail import MailUnavailable
from idp.verification import service as verification
from idp.verification.images import DocumentRejected, clean_image

HOUR, DAY = 3600, 86400
APPEAL_PURPOSE = "appeal"
DELETE_DOCUMENTS_JOB = "recovery.delete_appeal_documents"
# The documents each kind of appeal carries: those of real-name verification.
APPEAL_DOCUMENTS = verification.DOCUMENT_KINDS
METHODS = ("phone", "email")

# Reason codes of RecoveryError; the pages have a message for each.
REASONS = (
    "lookup_throttled", "details_or_code_wrong", "account_disabled", "mail_off", "mail_unavailable",
    "mail_cap", "address_cap", "link_invalid", "link_expired", "link_used_or_replaced", "appeal_open",
    "too_many_appeals", "email_missing", "email_already_confirmed", "sms_unavailable",
    "resend_too_soon", "phone_daily_cap",
)


class RecoveryError(Refused):
    def __init__(self, reason: str, retry_after: int = 0) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class FieldProblem(Refused):
    """One field of a recovery form was refused (``field``, ``reason``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason, field)


def _app():
    return current_app._get_current_object()


def _cfg(key: str):
    return current_app.config[key]


# --- limits ------------------------------------------------------------------------------


def lookup_limit() -> Limit:
    """检索登录名 / 检索单位名称 per client address."""
    return Limit("recovery_lookup", _cfg("RECOVERY_LOOKUPS_PER_ADDRESS"), HOUR)


def sends_limit() -> Limit:
    """Every recovery send (SMS code, reset link) per client address per day."""
    return Limit("recovery_sends", _cfg("RECOVERY_SENDS_PER_ADDRESS_PER_DAY"), DAY)


def mails_limit() -> Limit:
    """Links and codes one e-mail address may receive per day."""
    return Limit("recovery_mail_to", _cfg("RECOVERY_MAILS_PER_ADDRESS_PER_DAY"), DAY)


def appeal_limit() -> Limit:
    """Appeal submissions per client address (each decodes images and writes files)."""
    return Limit("appeal_submit", _cfg("UPLOAD_MAX_PER_MINUTE"), 60)


def look_up(address: str) -> None:
    """Count one 检索登录名 / 检索单位名称 of ``address``; refused when it has made too many.
    Every look-up counts: they all answer alike, so none is a 'failure' to count apart."""
    limit = lookup_limit()
    if limit.exceeded(address):
        signals.recovery_refused.send(_app(), subject=address, outcome="refused",
                                      details={"reason": "lookup_throttled"})
        raise RecoveryError("lookup_throttled", limit.retry_after(address))
    limit.hit(address)


@contextmanager
def answer_floor():
    """The block takes at least RECOVERY_ANSWER_FLOOR seconds of real time, so that a send that
    reached the gateway and one that did not (the phone is not the account's) answer alike."""
    started = time.monotonic()
    try:
        yield
    finally:
        left = _cfg("RECOVERY_ANSWER_FLOOR") - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)


# --- matching what was typed against the account ------------------------------------------


def _fold(text: str | None) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").split()).casefold()


def normalise_phone(phone: str | None) -> str | None:
    return identifiers.normalise_mobile(phone or "")


@dataclass(frozen=True)
class Target:
    """What step 1 (检索登录名) fixed: the account type and login name typed."""

    account_type: str
    login_name: str

    @property
    def key(self) -> str:
        return login_name_key(normalise_login_name(self.login_name))

    @property
    def purpose(self) -> str:
        # The code of one reset serves that login name only.
        return f"reset:{self.account_type}:{self.key}"

    def account(self) -> Account | None:
        account = accounts.find_account(self.key)
        return account if account is not None and account.account_type == self.account_type else None


def _unit_matches(account: Account, org_name: str | None, uscc: str | None) -> bool:
    if account.account_type != LEGAL:
        return True
    return (bool(account.org_name) and _fold(account.org_name) == _fold(org_name)
            and bool(account.uscc) and _fold(account.uscc) == _fold(uscc))


def _phone_matches(account: Account, phone: str | None) -> bool:
    mine = normalise_phone(account.phone)
    return mine is not None and mine == normalise_phone(phone)


def _email_matches(account: Account, email: str | None) -> bool:
    return bool(account.email) and account.email_verified and _fold(account.email) == _fold(email)


# --- 登录名重置密码 by SMS --------------------------------------------------------------------


def send_reset_code(target: Target, phone: str, org_name: str | None, uscc: str | None,
                    address: str) -> sms_codes.SendResult:
    """获取验证码: sent only when the phone (and a unit's name and USCC) are the account's; the
    caps, the resend wait and the answer are the same either way."""
    with answer_floor():
        account = target.account()
        matched = account is not None and _phone_matches(account, phone) and _unit_matches(account, org_name, uscc)
        result = sms_codes.send_code(normalise_phone(phone), target.purpose, address, deliver=matched,
                                     extra_limits=(sends_limit(),))
    return result


def reset_by_code(target: Target, phone: str, org_name: str | None, uscc: str | None,
                  new_password: str, code: str) -> Account:
    """确定: the new password for the account when the code and every detail match; else one
    answer (``details_or_code_wrong``) whatever was wrong. Flushes; the caller commits and then
    calls ``after_recovery``."""
    problem = password_problem(new_password or "", target.login_name)
    if problem:
        raise FieldProblem("new_password", problem)
    phone = normalise_phone(phone)
    wrong = sms_codes.verify_code(phone, target.purpose, code)
    account = target.account()
    matched = account is not None and _phone_matches(account, phone) and _unit_matches(account, org_name, uscc)
    if wrong is None and not matched:
        # A right code with wrong unit data: it still answers a question, so it counts.
        sms_codes.count_failed_use(phone, target.purpose, "details_mismatch")
    if wrong is not None or not matched:
        _refused(target.login_name, "details_or_code_wrong", code_problem=wrong, matched=matched)
    if account.status == DISABLED:
        sms_codes.spend_code(phone, target.purpose, code)  # told once: only the phone's holder learns it
        _refused(account.login_name, "account_disabled")
    if not sms_codes.spend_code(phone, target.purpose, code):
        _refused(target.login_name, "details_or_code_wrong", code_problem="spent_meanwhile")
    _set_password(account, new_password)
    return account


def _refused(subject: str, reason: str, **details) -> None:
    signals.recovery_refused.send(_app(), subject=subject, outcome="refused", details={"reason": reason, **details})
    raise RecoveryError(reason)


def _set_password(account: Account, new_password: str, must_change: bool = False) -> None:
    account.password_hash = services().passwords.hash(new_password)
    account.password_changed_at = services().clock.now()
    account.must_change_password = must_change
    db.session.flush()


# --- 登录名重置密码 by e-mail ------------------------------------------------------------------


def mail_enabled() -> bool:
    return bool(getattr(services().mail, "enabled", False))


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="idp.recovery.reset-link")


def _link_key(account_id: int) -> str:
    return f"mailreset:{account_id}"


def _mail_caps(email: str, address: str) -> tuple[Limit, str, Limit]:
    per_mail, mail_ident = mails_limit(), services().keyring.index(_fold(email), "email")
    per_address = sends_limit()
    if per_address.exceeded(address):
        raise RecoveryError("address_cap", per_address.retry_after(address))
    if per_mail.exceeded(mail_ident):
        raise RecoveryError("mail_cap", per_mail.retry_after(mail_ident))
    return per_mail, mail_ident, per_address


def send_reset_link(target: Target, email: str, org_name: str | None, uscc: str | None, reason: str,
                    address: str, link_for: Callable[[str], str]) -> None:
    """The reset link, to the account's confirmed e-mail only; the same answer when the address
    is not the account's. ``link_for(token)`` makes the absolute URL of the link's page."""
    if not mail_enabled():
        raise RecoveryError("mail_off")
    with answer_floor():
        per_mail, mail_ident, per_address = _mail_caps(email, address)
        account = target.account()
        matched = account is not None and _email_matches(account, email) and _unit_matches(account, org_name, uscc)
        if not matched:
            per_mail.hit(mail_ident)
            per_address.hit(address)
            signals.recovery_refused.send(_app(), subject=target.login_name, outcome="refused",
                                          details={"reason": "not_the_account_email", "method": "email"})
            return
        nonce = secrets.token_urlsafe(16)
        token = _serializer().dumps({"a": account.id, "n": nonce, "t": int(services().clock.time())})
        ttl = _cfg("RECOVERY_LINK_TTL")
        try:
            message_id = services().mail.send(account.email, "password_reset_link", {
                "login_name": account.login_name, "link": link_for(token), "minutes": ttl // 60})
        except MailUnavailable as exc:
            signals.mail_unavailable.send(_app(), subject=account.login_name, outcome="failure",
                                          details={"template": "password_reset_link", "error": str(exc)[:200]})
            raise RecoveryError("mail_unavailable") from None
        # Kept only once sent: a failed send leaves the earlier link valid and no cap spent.
        services().store.set(_link_key(account.id), json.dumps({"n": nonce, "reason": reason[:200]}).encode(), ttl)
        per_mail.hit(mail_ident)
        per_address.hit(address)
    signals.recovery_mail_sent.send(_app(), subject=account.login_name,
                                    details={"template": "password_reset_link", "message_id": message_id})


@dataclass(frozen=True)
class ResetLink:
    account: Account
    nonce: str
    reason: str


def open_link(token: str) -> ResetLink:
    """The account a reset link is for, while the link is valid: signed by us, at most
    RECOVERY_LINK_TTL old, not used, not replaced by a newer link."""
    try:
        payload = _serializer().loads(token or "")
        account_id, nonce, issued = int(payload["a"]), str(payload["n"]), float(payload["t"])
    except (BadSignature, KeyError, TypeError, ValueError):
        _refused("-", "link_invalid")
    if services().clock.time() - issued > _cfg("RECOVERY_LINK_TTL"):
        _refused(str(account_id), "link_expired")
    raw = services().store.get(_link_key(account_id))
    current = json.loads(raw) if raw else None
    account = db.session.get(Account, account_id)
    if account is None:
        _refused(str(account_id), "link_invalid")
    if current is None or current.get("n") != nonce:
        _refused(account.login_name, "link_used_or_replaced")
    if account.status == DISABLED:
        _refused(account.login_name, "account_disabled")
    return ResetLink(account, nonce, current.get("reason") or "")


def reset_by_link(token: str, new_password: str) -> ResetLink:
    """The new password through a valid link, which is then spent. Flushes."""
    link = open_link(token)
    problem = password_problem(new_password or "", link.account.login_name)
    if problem:
        raise FieldProblem("new_password", problem)
    store = services().store
    key = _link_key(link.account.id)
    left = store.ttl(key)
    raw = store.pop(key)  # atomically: of two concurrent uses, one wins
    if raw is None or json.loads(raw).get("n") != link.nonce:
        if raw is not None and left:
            store.add(key, raw, left)  # a newer link than ours: it stays valid
        _refused(link.account.login_name, "link_used_or_replaced")
    _set_password(link.account, new_password)
    return link


# --- confirming an e-mail address in the user centre --------------------------------------


def _email_purpose(account: Account) -> str:
    return f"email_confirm:{account.id}"


def _email_ident(email: str) -> str:
    return services().keyring.index(_fold(email), "email")


def send_email_code(account: Account, address: str) -> None:
    """A confirmation code to the account's (unconfirmed) e-mail address."""
    if not mail_enabled():
        raise RecoveryError("mail_off")
    if not account.email:
        raise RecoveryError("email_missing")
    if account.email_verified:
        raise RecoveryError("email_already_confirmed")
    per_mail, mail_ident, per_address = _mail_caps(account.email, address)
    code = sms_codes.new_code()
    try:
        services().mail.send(account.email, "email_confirmation_code",
                             {"code": code, "minutes": _cfg("SMS_CODE_TTL") // 60})
    except MailUnavailable as exc:
        signals.mail_unavailable.send(_app(), subject=account.login_name, outcome="failure",
                                      details={"template": "email_confirmation_code", "error": str(exc)[:200]})
        raise RecoveryError("mail_unavailable") from None
    sms_codes.keep_code(_email_ident(account.email), _email_purpose(account), code)
    per_mail.hit(mail_ident)
    per_address.hit(address)
    signals.recovery_mail_sent.send(_app(), subject=account.login_name,
                                    details={"template": "email_confirmation_code"})


def confirm_email(account: Account, code: str) -> None:
    """The code sent to the address: the address is confirmed. Flushes; FieldProblem on
    ``email_code`` otherwise."""
    ident, purpose = _email_ident(account.email or ""), _email_purpose(account)
    problem = sms_codes.verify_keyed(ident, purpose, code, mask_email(account.email))
    if problem is None and not sms_codes.spend_keyed(ident, purpose, code):
        problem = "sms_code_missing_or_expired"
    if problem:
        raise FieldProblem("email_code", problem)
    account.email_verified = True
    db.session.flush()
    signals.email_confirmed.send(_app(), subject=account.login_name)


# --- after any recovery ----------------------------------------------------------------------


def after_recovery(account: Account, method: str, reason: str = "", tell_also: tuple[str | None, ...] = ()) -> int:
    """Once the new password is committed: the lock ends; every credential issued so far dies
    (the cut-off), every session ends with a back-channel logout, refresh tokens are revoked;
    the reserved phone (and ``tell_also``) and the confirmed e-mail are told. Returns the
    sessions ended."""
    handlers.unlock(account)
    unit_of_work.after_commit(functools.partial(cut_off_account, account.sub))
    ended = sso_sessions.end_everything(account.id, "password_recovered")
    when = services().clock.now().astimezone(_china()).strftime("%Y-%m-%d %H:%M")
    phones = {p for p in (normalise_phone(account.phone), *map(normalise_phone, tell_also)) if p}
    for phone in sorted(phones):
        _sms(account.login_name, phone, "password_recovered", {"login_name": account.login_name, "time": when})
    if account.email and account.email_verified:
        _mail(account, "password_recovered", {"login_name": account.login_name, "time": when,
                                              "method": str(METHOD_NAMES.get(method, method))})
    signals.password_recovered.send(_app(), subject=account.login_name, details={
        "method": method, "sessions": ended, "reason": (reason or "")[:200]})
    return ended


METHOD_NAMES = {"sms": "短信验证码", "email": "电子邮箱", "appeal": "申诉"}


def _china():
    from datetime import timezone

    return timezone(timedelta(hours=8))


def _sms(subject: str, phone: str, template: str, params: dict) -> None:
    notices.sms(subject, phone, template, params)


def _mail(account: Account, template: str, params: dict) -> None:
    notices.mail(account.login_name, account.email, template, params)


# --- 申诉找回密码 (appeals) -----------------------------------------------------------------


def send_appeal_code(phone: str, address: str) -> sms_codes.SendResult:
    return sms_codes.send_code(normalise_phone(phone), APPEAL_PURPOSE, address, extra_limits=(sends_limit(),))


def _appellant_account(account_type: str, fields: dict) -> Account | None:
    if account_type == NATURAL:
        account = accounts.find_by_document(fields.get("document_type"), fields.get("document_number"))
        if account is not None and account.account_type == NATURAL and _fold(account.name) == _fold(fields.get("name")):
            return account
        return None
    uscc = (fields.get("uscc") or "").strip().upper()
    account = db.session.execute(select(Account).where(Account.uscc == uscc)).scalar() if uscc else None
    if account is not None and account.account_type == LEGAL and _fold(account.org_name) == _fold(fields.get("org_name")):
        return account
    return None


def open_appeal(account: Account) -> ReviewCase | None:
    return db.session.execute(select(ReviewCase).where(
        ReviewCase.case_type == PASSWORD_APPEAL, ReviewCase.state == PENDING,
        ReviewCase.account_id == account.id).limit(1)).scalar()


APPEAL_FIELDS = {
    NATURAL: ("name", "identity_region", "document_type", "document_number", "phone"),
    LEGAL: ("org_name", "uscc", "legal_rep_name", "name", "phone"),
}


def submit_appeal(account_type: str, fields: dict, files: dict[str, tuple[str | None, bytes]], code: str,
                  address: str) -> ReviewCase:
    """下一步: the appeal with its document photos (the verification upload rules), the phone
    proven by its code; opens a review case. One open appeal per account. Flushes."""
    limit = appeal_limit()
    if limit.exceeded(address):
        raise RecoveryError("too_many_appeals", limit.retry_after(address))
    limit.hit(address)
    cleaned = {}
    for kind in APPEAL_DOCUMENTS[account_type]:
        filename, data = files.get(kind) or (None, b"")
        try:
            cleaned[kind] = clean_image(data, filename)
        except DocumentRejected as rejected:
            raise FieldProblem(kind, rejected.reason) from None
    phone = normalise_phone(fields.get("phone"))
    problem = sms_codes.verify_code(phone, APPEAL_PURPOSE, code)
    if problem:
        raise FieldProblem("sms_code", problem)
    account = _appellant_account(account_type, fields)
    if account is not None and open_appeal(account) is not None:
        sms_codes.count_failed_use(phone, APPEAL_PURPOSE, "appeal_open")
        _refused(account.login_name, "appeal_open")
    if not sms_codes.spend_code(phone, APPEAL_PURPOSE, code):
        raise FieldProblem("sms_code", "sms_code_missing_or_expired")
    storage = services().documents
    documents = [{"name": kind, "kind": kind, "key": storage.put(data), "content_type": content_type,
                  "size": len(data)} for kind, (data, content_type) in cleaned.items()]
    applicant = {name: (fields.get(name) or "") for name in APPEAL_FIELDS[account_type]}
    applicant["phone"] = phone
    case = cases.open_case(PASSWORD_APPEAL, account.id if account else None, {
        "account_type": account_type,
        "applicant": services().keyring.encrypt(json.dumps(applicant, ensure_ascii=False), "password_appeal"),
        "documents": documents,
    })
    signals.appeal_submitted.send(_app(), subject=account.login_name if account else mask_phone(phone),
                                  details={"case_id": case.id, "account_type": account_type, "matched": account is not None})
    return case


def applicant_of(case: ReviewCase) -> dict:
    sealed = (case.data or {}).get("applicant")
    if not sealed:
        return {}
    return json.loads(services().keyring.decrypt(sealed, "password_appeal"))


APPEAL_LABELS = {
    "name": _l("Name"), "identity_region": _l("Identity type"), "document_type": _l("Document type"),
    "document_number": _l("Document number"), "phone": _l("Mobile phone"), "org_name": _l("Unit name"),
    "uscc": _l("Unified social credit code"), "legal_rep_name": _l("Legal representative"),
}
_APPEAL_MASKS = {"document_number": mask_document, "phone": mask_phone}


def _appeal_rows(case: ReviewCase, clear: bool) -> list:
    data = applicant_of(case)
    rows = []
    for name in APPEAL_FIELDS.get((case.data or {}).get("account_type"), ()):
        value = data.get(name) or ""
        mask = None if clear else _APPEAL_MASKS.get(name)
        rows.append((name, APPEAL_LABELS.get(name, name), mask(value) if mask else value))
    account = cases.account_of(case)
    matched = (_l("Account %(login)s", login=account.login_name) if account is not None
               else _l("No account matches these data: reject the appeal (the applicant may register)."))
    rows.append(("matched_account", _l("Matching account"), str(matched)))
    return rows


def _describe_appeal(case: ReviewCase):
    sections = [(_l("Appeal (as submitted)"), _appeal_rows(case, clear=False))]
    if case.account_id:
        sections += cases.describe_account(case)
    return sections


def _describe_appeal_clear(case: ReviewCase):
    return [(_l("Appeal (as submitted, clear)"), _appeal_rows(case, clear=True))]


def _document_labels(case: ReviewCase):
    return [(kind, verification.DOCUMENT_LABELS.get(kind, kind)) for kind in verification.document_kinds(case)]


def temporary_password() -> str:
    """12 characters from every class of the policy (never the login name: it has a '#')."""
    alphabet = string.ascii_letters + string.digits
    while True:
        body = "".join(secrets.choice(alphabet) for _ in range(10))
        candidate = f"{body[:5]}#{body[5:]}{secrets.choice(string.digits)}"
        if password_problem(candidate) is None:
            return candidate


_OUTCOMES = "recovery_appeal_outcomes"


def _approve_appeal(case: ReviewCase) -> None:
    """Approval (in the decision's transaction): a temporary password that must be changed at
    the next sign-in, and the appeal's phone as the new reserved phone. The SMS goes out once the
    decision is committed (``_after_decision``)."""
    account = cases.account_to_decide(case)
    if account is None:
        raise cases.CaseError("appeal_without_account")
    if account.status == DISABLED:
        raise cases.CaseError("appeal_account_disabled")
    applicant = applicant_of(case)
    old_phone = account.phone
    password = temporary_password()
    _set_password(account, password, must_change=True)
    new_phone = normalise_phone(applicant.get("phone"))
    if new_phone and new_phone != normalise_phone(old_phone):
        account.phone = new_phone
        account.phone_index = services().keyring.index(new_phone, "phone")
    account.phone_verified = True
    g.setdefault(_OUTCOMES, {})[case.id] = {"password": password, "old_phone": old_phone}
    _schedule_document_deletion(case)


def _reject_appeal(case: ReviewCase) -> None:
    _schedule_document_deletion(case)


def _schedule_document_deletion(case: ReviewCase) -> None:
    when = services().clock.now() + timedelta(days=_cfg("RECOVERY_APPEAL_DOCUMENT_DAYS"))
    jobs.add(DELETE_DOCUMENTS_JOB, {"case_id": case.id}, run_after=when)


def delete_appeal_documents(payload: dict) -> None:
    """The job: the appeal's photos are deleted (the decision and its record stay)."""
    case = db.session.get(ReviewCase, int(payload["case_id"]))
    if case is None:
        return
    storage = services().documents
    data = dict(case.data or {})
    for item in data.get("documents") or []:
        if isinstance(item, dict) and item.get("key"):
            storage.delete(item["key"])
    data["documents"] = []
    data["documents_deleted_at"] = services().clock.now().isoformat()
    case.data = data
    flag_modified(case, "data")
    db.session.flush()


def _after_decision(sender, details=None, **_: Any) -> None:
    """The outcome by SMS, once the decision is committed: approval → the login name and the
    temporary password to the appeal's phone, then everything of ``after_recovery`` (the old
    reserved phone and the e-mail told); rejection → the reason."""
    details = details or {}
    if details.get("case_type") != PASSWORD_APPEAL:
        return
    case = db.session.get(ReviewCase, details["case_id"])
    if case is None:
        return
    applicant = applicant_of(case)
    phone = normalise_phone(applicant.get("phone"))
    account = cases.account_of(case)
    if details.get("decision") == "approved":
        outcome = g.get(_OUTCOMES, {}).pop(case.id, None)
        if account is None or outcome is None:
            return
        _sms(account.login_name, phone, "appeal_approved", {"login_name": account.login_name, "password": outcome["password"]})
        after_recovery(account, "appeal", tell_also=(outcome["old_phone"],))
    elif phone:
        subject = account.login_name if account is not None else mask_phone(phone)
        _sms(subject, phone, "appeal_rejected", {"reason": (details.get("reason") or "")[:200]})


APPEAL_CASE_TYPE = cases.CaseType(
    name=PASSWORD_APPEAL, label=_l("Password appeal"), on_approved=_approve_appeal, on_rejected=_reject_appeal,
    describe=_describe_appeal, describe_clear=_describe_appeal_clear,
    documents=cases.Documents(kinds=_document_labels, fetch=verification.document_of),
)


def install() -> None:
    """The appeal case type, the SMS of its outcome, the job that deletes its documents
    (idempotent)."""
    cases.register(APPEAL_CASE_TYPE)
    jobs.register(DELETE_DOCUMENTS_JOB, delete_appeal_documents)
    signals.case_decided.connect(_after_decision, weak=False)
