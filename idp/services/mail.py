"""The mail sender role: sends a templated e-mail to one address.

Implementations: ``OutboxMailSender`` (development: JSON lines appended to
``instance/mail-outbox.jsonl``, listed on the development page beside the SMS outbox) and
``SmtpMailSender`` (production: the operator's SMTP relay, always over TLS — STARTTLS on the
submission port or TLS from the first byte — with the server's certificate checked against
the system's or a configured CA file, and optional authentication). ``off`` offers no e-mail
at all: the e-mail channel of password recovery and the confirmation of addresses are hidden.
Chosen by ``IDP_MAIL_SENDER``.

Like the SMS gateway, the call is made in the request (the user waits for a code or a link),
with a timeout; a failure raises ``MailUnavailable`` and the caller says so.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Protocol

from idp.security.pii import mask_email
from idp.services.outbox import Outbox

# (subject, body) by template; the bodies are plain text.
TEMPLATES = {
    "email_confirmation_code": (
        "【科技部政务服务平台】电子邮箱验证码",
        "您正在确认电子邮箱，验证码为{code}，{minutes}分钟内有效，请勿泄露给他人。\n"
        "如非本人操作，请忽略本邮件。",
    ),
    "password_reset_link": (
        "【科技部政务服务平台】重置密码",
        "您正在通过电子邮箱重置登录名{login_name}的密码。请在{minutes}分钟内打开以下链接设置新密码"
        "（链接只能使用一次）：\n{link}\n如非本人操作，请忽略本邮件，您的密码不会改变。",
    ),
    "password_recovered": (
        "【科技部政务服务平台】密码已重置",
        "登录名{login_name}的密码已于{time}通过{method}重置，所有已登录的会话均已退出。"
        "如非本人操作，请立即联系技术支持：010-88659000。",
    ),
}


class MailUnavailable(RuntimeError):
    """The mail server could not take the message (refused, timeout, TLS failure)."""


class MailSender(Protocol):
    enabled: bool

    def send(self, to: str, template: str, params: dict) -> str:
        """Send and return a message id, or raise MailUnavailable."""


def render(template: str, params: dict) -> tuple[str, str]:
    subject, body = TEMPLATES[template]
    return subject, body.format(**params)


class NoMailSender:
    """``IDP_MAIL_SENDER=off``: the provider sends no e-mail (and offers none)."""

    enabled = False

    def send(self, to: str, template: str, params: dict) -> str:
        raise MailUnavailable("no mail sender is configured")


class OutboxMailSender(Outbox):
    enabled = True

    def send(self, to: str, template: str, params: dict) -> str:
        subject, body = render(template, params)
        return self._write(to, template, params, subject=subject, text=body)


TLS_MODES = ("starttls", "tls")


class SmtpMailSender:
    enabled = True

    def __init__(self, host: str, port: int, tls: str, sender: str, *, username: str = "", password: str = "",
                 timeout: float = 10.0, ca_file: str = "") -> None:
        if not host or not sender:
            raise ValueError("IDP_MAIL_SMTP_HOST and IDP_MAIL_FROM are required")
        if tls not in TLS_MODES:
            raise ValueError(f"IDP_MAIL_SMTP_TLS must be one of {TLS_MODES}")
        self.host, self.port, self.tls, self.sender = host, port, tls, sender
        self.username, self.password, self.timeout = username, password, timeout
        self.context = ssl.create_default_context(cafile=ca_file or None)  # verifies name and chain

    def _message(self, to: str, template: str, params: dict) -> EmailMessage:
        subject, body = render(template, params)
        message = EmailMessage()
        message["From"] = formataddr(("科技部政务服务平台", self.sender))
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(body)
        return message

    def send(self, to: str, template: str, params: dict) -> str:
        message = self._message(to, template, params)
        try:
            if self.tls == "tls":
                connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with connection:
                if self.tls == "starttls":
                    connection.ehlo()
                    if not connection.has_extn("starttls"):
                        raise MailUnavailable("the mail server does not offer STARTTLS")
                    connection.starttls(context=self.context)
                    connection.ehlo()
                if self.username:
                    connection.login(self.username, self.password)
                refused = connection.send_message(message)
            if refused:
                raise MailUnavailable("the mail server refused the recipient")
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
            raise MailUnavailable(_masked(f"{type(exc).__name__}: {exc}")[:300]) from exc
        return str(message["Message-ID"])


# An address as a mail server may quote it in a refusal (550 5.1.1 <ZHANGSAN@EXAMPLE.CN>: …), in
# any case, and as smtplib repeats it ({'zhangsan@example.cn': (550, b'…')}).
_ADDRESS = re.compile(r"[^\s<>'\"(),;:@]+@[^\s<>'\"(),;:@]+")


def _masked(error: str) -> str:
    """The server's words without any address in clear: they reach the audit log and a job's
    last_error, where personal data is never kept."""
    return _ADDRESS.sub(lambda match: mask_email(match.group(0)), error)


def create_mail_sender(config: dict, clock) -> MailSender:
    kind = config["MAIL_SENDER"]
    if kind == "off":
        return NoMailSender()
    if kind == "outbox":
        return OutboxMailSender(Path(config["INSTANCE_DIR"]) / "mail-outbox.jsonl", clock)
    if kind == "smtp":
        return SmtpMailSender(
            config["MAIL_SMTP_HOST"], config["MAIL_SMTP_PORT"], config["MAIL_SMTP_TLS"], config["MAIL_FROM"],
            username=config["MAIL_SMTP_USERNAME"], password=config["MAIL_SMTP_PASSWORD"],
            timeout=config["MAIL_SMTP_TIMEOUT"], ca_file=config["MAIL_SMTP_CA_FILE"],
        )
    raise ValueError(f"unknown IDP_MAIL_SENDER {kind!r}")
