"""Six-digit SMS verification codes: valid five minutes, single use, resend after a minute,
capped per phone per day and per client address per hour (no SMS bombing through us).

Used by registration now and by password recovery later; ``purpose`` keeps the codes of one
flow from being spent in another.
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


def send_code(phone: str, purpose: str, address: str) -> SendResult:
    cfg = current_app.config
    store = services().store
    ident = _phone_key(phone)
    per_phone, per_address = _limits()
    if per_address.exceeded(address):
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

    code = f"{secrets.randbelow(10**6):06d}"
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
    store.set(f"smscode:{purpose}:{ident}", json.dumps({"code": code}).encode(), cfg["SMS_CODE_TTL"])
    store.delete(f"smsfail:{purpose}:{ident}")
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
    store = services().store
    ident = _phone_key(phone)
    key = f"smscode:{purpose}:{ident}"
    raw = store.get(key)
    if raw is None:
        code_rejected(phone, purpose, "sms_code_missing_or_expired")
        return "sms_code_missing_or_expired"
    expected = json.loads(raw)["code"]
    if not hmac.compare_digest(expected.encode(), (code or "").strip().encode()):
        count_failed_use(phone, purpose, "sms_code_wrong")
        return "sms_code_wrong"
    return None


def count_failed_use(phone: str, purpose: str, reason: str) -> bool:
    """Count one failed use of the phone's code (a wrong entry, or a right code whose request
    was refused for a reason that answers a question, such as a taken document); after
    SMS_CODE_MAX_ATTEMPTS the code is void. Announced with ``reason``; True when voided.

    So one SMS answers a bounded number of questions, whatever they are."""
    store = services().store
    ident = _phone_key(phone)
    failures = store.incr(f"smsfail:{purpose}:{ident}", current_app.config["SMS_CODE_TTL"])
    voided = failures >= current_app.config["SMS_CODE_MAX_ATTEMPTS"]
    if voided:
        store.delete(f"smscode:{purpose}:{ident}")
    code_rejected(phone, purpose, reason, attempts=failures, voided=voided)
    return voided


def spend_code(phone: str, purpose: str, code: str) -> bool:
    """Use the code up (atomically): True for exactly one caller, the first to spend it.

    Announces nothing (it runs inside the caller's database transaction, which the audit
    subscriber would commit): a caller told False reports it with ``code_rejected`` once
    its transaction is rolled back."""
    store = services().store
    ident = _phone_key(phone)
    key = f"smscode:{purpose}:{ident}"
    left = store.ttl(key)
    raw = store.pop(key)
    if raw is None:  # spent by a concurrent request, or expired meanwhile
        return False
    expected = json.loads(raw)["code"]
    if not hmac.compare_digest(expected.encode(), (code or "").strip().encode()):
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
    signals.sms_code_rejected.send(
        current_app._get_current_object(), subject=phone_mask(phone), outcome="failure",
        details={"purpose": purpose, "reason": reason, **details},
    )


def phone_mask(phone: str) -> str:
    from idp.security.pii import mask_phone

    return mask_phone(phone)
