"""Six-digit verification codes: valid five minutes, single use, void after a number of wrong
entries, stored only as a keyed hash (a copy of the store reveals no code). By SMS: resend
after a minute, capped per phone per day and per client address per hour (no SMS bombing
through us).

Used by registration, password recovery and its appeals (SMS), and by the e-mail confirmation
of idp.recovery (``new_code`` / ``keep_code`` / ``verify_keyed`` / ``spend_keyed`` with an
identity of its own); ``purpose`` keeps the codes of one flow from being spent in another.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from flask import current_app

from idp import signals
from idp.extensions import services
from idp.security.ratelimit import Limit
from idp.services.sms import SmsUnavailable

DAY = 86400
HOUR = 3600


@dataclass(frozen=True)
class SendResult:
    sent: bool
    reason: str | None = None  # resend_too_soon, phone_daily_cap, address_cap, sms_unavailable
    retry_after: int = 0


def _limits():
    cfg = current_app.config
    return (
        Limit("sms_phone_day", cfg["SMS_MAX_PER_PHONE_PER_DAY"], DAY),
        Limit("sms_address_hour", cfg["SMS_MAX_PER_ADDRESS_PER_HOUR"], HOUR),
    )


def _phone_key(phone: str) -> str:
    return services().keyring.index(phone, "phone")


def _digest(ident: str, purpose: str, code: str) -> str:
    """The keyed hash a code is stored as (HMAC with the personal-data index key)."""
    return services().keyring.index(f"{purpose}:{ident}:{(code or '').strip()}", "one_time_code")


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def keep_code(ident: str, purpose: str, code: str) -> None:
    """Keep ``code`` (hashed) as the one valid code of ``ident`` for ``purpose``, replacing
    any earlier one; a caller that sends codes by another channel keeps each once it is sent."""
    store = services().store
    store.set(f"smscode:{purpose}:{ident}", json.dumps({"hash": _digest(ident, purpose, code)}).encode(),
              current_app.config["SMS_CODE_TTL"])
    store.delete(f"smsfail:{purpose}:{ident}")


def _matches(raw: bytes, ident: str, purpose: str, code: str) -> bool:
    expected = json.loads(raw).get("hash") or ""
    return hmac.compare_digest(expected.encode(), _digest(ident, purpose, code).encode())


def send_code(phone: str, purpose: str, address: str, deliver: bool = True,
              extra_limits: tuple[Limit, ...] = ()) -> SendResult:
    """Send a code to ``phone``. With ``deliver`` False everything is done as for a send (the
    caps are checked and counted, the resend wait starts) except the message itself: the
    caller (password recovery) answers the same whether or not the phone is the account's.
    ``extra_limits`` are further caps counted per ``address``."""
    cfg = current_app.config
    store = services().store
    ident = _phone_key(phone)
    per_phone, per_address = _limits()
    extra = next((limit for limit in extra_limits if limit.exceeded(address)), None)
    if extra is not None:
        result = SendResult(False, "address_cap", extra.retry_after(address))
    elif per_address.exceeded(address):
        result = SendResult(False, "address_cap", per_address.retry_after(address))
    elif per_phone.exceeded(ident):
        result = SendResult(False, "phone_daily_cap", per_phone.retry_after(ident))
    elif not store.add(f"smsresend:{purpose}:{ident}", b"1", cfg["SMS_RESEND_SECONDS"]):
        left = store.ttl(f"smsresend:{purpose}:{ident}") or 1
        result = SendResult(False, "resend_too_soon", int(left) + 1)
    else:
        result = None
    if result is not None:
        signals.sms_code_refused.send(
            current_app._get_current_object(), subject=phone_mask(phone), outcome="refused",
            details={"reason": result.reason, "purpose": purpose},
        )
        return result

    if not deliver:
        for limit in (per_phone, per_address, *extra_limits):
            limit.hit(ident if limit is per_phone else address)
        signals.sms_code_refused.send(
            current_app._get_current_object(), subject=phone_mask(phone), outcome="refused",
            details={"reason": "not_the_account_phone", "purpose": purpose},
        )
        return SendResult(True, retry_after=cfg["SMS_RESEND_SECONDS"])
    code = new_code()
    minutes = cfg["SMS_CODE_TTL"] // 60
    try:
        message_id = services().sms.send(phone, "verification_code", {"code": code, "minutes": minutes})
    except SmsUnavailable as exc:
        store.delete(f"smsresend:{purpose}:{ident}")
        signals.sms_unavailable.send(
            current_app._get_current_object(), subject=phone_mask(phone), outcome="failure",
            details={"purpose": purpose, "error": str(exc)[:200]},
        )
        return SendResult(False, "sms_unavailable")
    per_phone.hit(ident)
    per_address.hit(address)
    for limit in extra_limits:
        limit.hit(address)
    keep_code(ident, purpose, code)
    signals.sms_code_sent.send(
        current_app._get_current_object(), subject=phone_mask(phone),
        details={"purpose": purpose, "message_id": message_id},
    )
    return SendResult(True, retry_after=cfg["SMS_RESEND_SECONDS"])


def verify_code(phone: str, purpose: str, code: str) -> str | None:
    """None when ``code`` is the one sent to ``phone`` for ``purpose``, else a reason code.

    The code is NOT spent: a caller that still has work to do before the code has served
    its purpose (creating an account) spends it with ``spend_code`` once that work
    succeeded. Wrong entries count, and void the code after SMS_CODE_MAX_ATTEMPTS.
    """
    return verify_keyed(_phone_key(phone), purpose, code, phone_mask(phone))


def verify_keyed(ident: str, purpose: str, code: str, subject: str) -> str | None:
    """``verify_code`` for a code kept under any identity (``subject`` names it, masked, in
    the audit log)."""
    raw = services().store.get(f"smscode:{purpose}:{ident}")
    if raw is None:
        _rejected(subject, purpose, "sms_code_missing_or_expired")
        return "sms_code_missing_or_expired"
    if not _matches(raw, ident, purpose, code):
        count_failed_keyed(ident, purpose, "sms_code_wrong", subject)
        return "sms_code_wrong"
    return None


def count_failed_use(phone: str, purpose: str, reason: str) -> bool:
    """Count one failed use of the phone's code (a wrong entry, or a right code whose request
    was refused for a reason that answers a question, such as a taken document); after
    SMS_CODE_MAX_ATTEMPTS the code is void. Announced with ``reason``; True when voided.

    So one SMS answers a bounded number of questions, whatever they are."""
    return count_failed_keyed(_phone_key(phone), purpose, reason, phone_mask(phone))


def count_failed_keyed(ident: str, purpose: str, reason: str, subject: str) -> bool:
    store = services().store
    failures = store.incr(f"smsfail:{purpose}:{ident}", current_app.config["SMS_CODE_TTL"])
    voided = failures >= current_app.config["SMS_CODE_MAX_ATTEMPTS"]
    if voided:
        store.delete(f"smscode:{purpose}:{ident}")
    _rejected(subject, purpose, reason, attempts=failures, voided=voided)
    return voided


def spend_code(phone: str, purpose: str, code: str) -> bool:
    """Use the code up (atomically): True for exactly one caller, the first to spend it.

    Announces nothing (it runs inside the caller's database transaction, which the audit
    subscriber would commit): a caller told False reports it with ``code_rejected`` once
    its transaction is rolled back."""
    return spend_keyed(_phone_key(phone), purpose, code)


def spend_keyed(ident: str, purpose: str, code: str) -> bool:
    """``spend_code`` for a code kept under any identity."""
    store = services().store
    key = f"smscode:{purpose}:{ident}"
    left = store.ttl(key)
    raw = store.pop(key)
    if raw is None:  # spent by a concurrent request, or expired meanwhile
        return False
    if not _matches(raw, ident, purpose, code):
        # A new code replaced the one verified a moment ago: put the new one back.
        if left:
            store.add(key, raw, left)
        return False
    store.delete(f"smsfail:{purpose}:{ident}")
    return True


def check_code(phone: str, purpose: str, code: str) -> str | None:
    """None when the code is right (and it is then spent); else a reason code."""
    problem = verify_code(phone, purpose, code)
    if problem:
        return problem
    if not spend_code(phone, purpose, code):
        code_rejected(phone, purpose, "sms_code_missing_or_expired")
        return "sms_code_missing_or_expired"
    return None


def code_rejected(phone: str, purpose: str, reason: str, **details) -> None:
    """Announce a refused code (audit: ``sms_code_rejected``), with the phone masked."""
    _rejected(phone_mask(phone), purpose, reason, **details)


def _rejected(subject: str, purpose: str, reason: str, **details) -> None:
    signals.sms_code_rejected.send(
        current_app._get_current_object(), subject=subject, outcome="failure",
        details={"purpose": purpose, "reason": reason, **details},
    )


def phone_mask(phone: str) -> str:
    from idp.security.pii import mask_phone

    return mask_phone(phone)
