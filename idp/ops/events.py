"""Metrics and log lines from the domain signals: the areas announce what happened
(idp.signals), operations count it and write the lines operators look for."""

from __future__ import annotations

import logging

from flask import current_app, has_app_context

from idp import signals
from idp.ops.metrics import GRANT_TYPES, TOKEN_ERRORS, reason_label

log = logging.getLogger("idp.events")


def _metrics():
    return current_app.extensions.get("idp.metrics") if has_app_context() else None


def _reason(details) -> str:
    return reason_label((details or {}).get("reason"))


def _client_address() -> str | None:
    from idp.audit import client_address

    return client_address()


def login_succeeded(sender, **kwargs):
    if (metrics := _metrics()) is not None:
        metrics.logins.labels("user", "success", "none").inc()


def login_failed(sender, details=None, **kwargs):
    reason = _reason(details)
    if (metrics := _metrics()) is not None:
        metrics.logins.labels("user", "failure", reason).inc()
    # The login name stays in the audit log (access-controlled personal data), not in the log.
    log.warning("sign-in failed", extra={"event": "login_failed", "reason": reason,
                                         "client": _client_address()})


def account_locked(sender, **kwargs):
    # Counted by the login_failed (reason account_locked) that follows it.
    log.warning("account locked", extra={"event": "account_locked", "client": _client_address()})


def staff_login_succeeded(sender, **kwargs):
    if (metrics := _metrics()) is not None:
        metrics.logins.labels("staff", "success", "none").inc()


def staff_login_failed(sender, details=None, **kwargs):
    reason = _reason(details)
    if (metrics := _metrics()) is not None:
        metrics.logins.labels("staff", "failure", reason).inc()
    log.warning("staff sign-in failed", extra={"event": "staff_login_failed", "reason": reason,
                                               "client": _client_address()})


def token_requested(sender, subject=None, outcome="success", details=None, **kwargs):
    details = details or {}
    grant_type = details.get("grant_type")
    grant_type = grant_type if grant_type in GRANT_TYPES else "other"
    error = details.get("error")
    error = "none" if outcome == "success" else (error if error in TOKEN_ERRORS else "other")
    if (metrics := _metrics()) is not None:
        metrics.count_token_request(grant_type, outcome, error)
    if outcome != "success":
        log.warning("token request refused", extra={
            "event": "token_refused", "grant_type": grant_type, "error": error,
            "client_id": str(subject)[:100] if subject else None, "client": _client_address()})


def _sms(outcome):
    def count(sender, details=None, **kwargs):
        if (metrics := _metrics()) is not None:
            details = details or {}
            purpose = reason_label(details.get("purpose") or details.get("template"))
            reason = _reason(details) if outcome == "refused" else "none"
            metrics.sms.labels(outcome, purpose, reason).inc()

    return count


_SUBSCRIBERS = (
    (signals.login_succeeded, login_succeeded),
    (signals.login_failed, login_failed),
    (signals.account_locked, account_locked),
    (signals.staff_login_succeeded, staff_login_succeeded),
    (signals.staff_login_failed, staff_login_failed),
    (signals.token_requested, token_requested),
    (signals.sms_code_sent, _sms("sent")),
    (signals.sms_code_refused, _sms("refused")),
    (signals.sms_unavailable, _sms("unavailable")),
)


def connect() -> None:
    for signal, subscriber in _SUBSCRIBERS:
        signal.connect(subscriber)
