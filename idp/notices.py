"""Notices to people (an SMS, an e-mail) about something the current unit of work changes: sent
once that change is committed, never before (a rolled-back decision, reset or authorisation
tells nobody anything), and a sender that fails is audited, never raised: the change stands."""

from __future__ import annotations

import functools

from flask import current_app

from idp import signals, unit_of_work
from idp.extensions import services
from idp.services.mail import MailUnavailable
from idp.services.sms import SmsUnavailable


def sms(subject: str, phone: str, template: str, params: dict) -> None:
    """``subject``: who the audit log names if the gateway fails (a login name, a masked phone)."""
    unit_of_work.after_commit(functools.partial(_send_sms, current_app._get_current_object(),
                                                subject, phone, template, params))


def mail(subject: str, address: str, template: str, params: dict) -> None:
    unit_of_work.after_commit(functools.partial(_send_mail, current_app._get_current_object(),
                                                subject, address, template, params))


def _send_sms(app, subject: str, phone: str, template: str, params: dict) -> None:
    try:
        services().sms.send(phone, template, params)
    except SmsUnavailable as exc:
        signals.sms_unavailable.send(app, subject=subject, outcome="failure",
                                     details={"template": template, "error": str(exc)[:200]})


def _send_mail(app, subject: str, address: str, template: str, params: dict) -> None:
    try:
        services().mail.send(address, template, params)
    except MailUnavailable as exc:
        signals.mail_unavailable.send(app, subject=subject, outcome="failure",
                                      details={"template": template, "error": str(exc)[:200]})
