"""Notices to people (an SMS, an e-mail) about something the current unit of work changes: sent
once that change is committed, never before (a rolled-back decision, reset or authorisation
tells nobody anything), and never lost to a gateway that is down: a failed send is audited and
retried by `idp worker`, the change stands.

Each notice is a job (``notice``, idp.jobs) added in the caller's transaction, so it exists
exactly when the change does; its first attempt runs as soon as the unit has ended (the request
or command, through ``jobs.run_after_unit``: no added wait when the gateway is up), and a failed
attempt (timeout, refused connection, 5xx, no message id) leaves it to the worker, with backoff,
until it is delivered or its attempts run out (then ``job_failed`` is audited). Outside a unit
(a shell, a test in a bare application context) the worker sends it.

The recipient and the parameters (a temporary password, a unit's name) are in the job's
encrypted ``sealed`` part, not in its clear payload: the row cannot simply refer to the account,
since a notice may go to a number the account no longer holds (the old reserved phone after a
recovery, an appeal's phone) and carries what was true when it was queued. The clear payload
names the channel, the template and the audit subject.

Once delivered a notice is done and never sent again. Delivery is still at least once: a gateway
that took the message but did not answer in time (or a worker that died before committing the
job as done) makes the next attempt send it again; the gateways' ``request_id`` differs per
attempt, so the operator cannot deduplicate either.
"""

from __future__ import annotations

from flask import current_app

from idp import jobs, signals
from idp.extensions import services
from idp.services.mail import MailUnavailable
from idp.services.sms import SmsUnavailable

JOB = "notice"


class NoticeNotSent(RuntimeError):
    """The gateway did not take the notice; the job is retried."""


def init_app(app) -> None:
    jobs.register(JOB, deliver)


def sms(subject: str, phone: str, template: str, params: dict) -> None:
    """``subject``: who the audit log names if the gateway fails (a login name, a masked phone)."""
    _queue("sms", subject, phone, template, params)


def mail(subject: str, address: str, template: str, params: dict) -> None:
    _queue("mail", subject, address, template, params)


def _queue(channel: str, subject: str, to: str, template: str, params: dict) -> None:
    job = jobs.add(JOB, {"channel": channel, "subject": subject, "template": template},
                   sealed={"to": to, "params": params})
    jobs.run_after_unit([job.id])


def deliver(payload: dict) -> None:
    """The job: one attempt. A failure is audited (``sms_unavailable`` / ``mail_unavailable``,
    as a code's failed send is) and raised for the queue to retry."""
    app = current_app._get_current_object()
    channel, subject, template = payload["channel"], payload.get("subject"), payload["template"]
    to, params = payload["sealed"]["to"], payload["sealed"]["params"]
    try:
        if channel == "sms":
            services().sms.send(to, template, params)
        else:
            services().mail.send(to, template, params)
    except (SmsUnavailable, MailUnavailable) as exc:
        error = str(exc)[:200]  # the senders keep recipients out of it (a mail server's refusal: masked)
        signal = signals.sms_unavailable if channel == "sms" else signals.mail_unavailable
        signal.send(app, subject=subject, outcome="failure",
                    details={"template": template, "error": error, "retried": True})
        raise NoticeNotSent(f"{channel}_unavailable: {error}") from exc
