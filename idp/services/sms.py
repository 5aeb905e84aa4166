"""The SMS gateway role: sends a templated text message to one phone.

Implementations: ``OutboxSmsSender`` (development: JSON lines appended to a file and listed on
a development-only page) and ``HttpSmsSender`` (the operator's signed JSON interface).
Chosen by ``IDP_SMS_GATEWAY``.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from idp.security.signing import signed_headers

# Message texts by template; the operator holds its own copies of approved templates.
TEMPLATES = {
    "verification_code": "【科技部政务服务平台】您的验证码为{code}，{minutes}分钟内有效，请勿泄露给他人。",
    "verification_approved": "【科技部政务服务平台】您的实名认证已通过人工审核（已审核认证）。",
    "verification_rejected": "【科技部政务服务平台】您的实名认证未通过人工审核，原因：{reason}。"
                             "请登录后在“我的信息”中查看并重新上传。",
}


class SmsUnavailable(RuntimeError):
    """The gateway could not take the message (timeout, refused, 5xx, bad answer)."""


class SmsSender(Protocol):
    def send(self, to: str, template: str, params: dict) -> str:
        """Send and return the gateway's message id, or raise SmsUnavailable."""


def render(template: str, params: dict) -> str:
    return TEMPLATES[template].format(**params)


class OutboxSmsSender:
    def __init__(self, path: str | Path, clock) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()

    def send(self, to: str, template: str, params: dict) -> str:
        message_id = "outbox-" + secrets.token_hex(8)
        line = json.dumps(
            {
                "message_id": message_id,
                "time": self.clock.now().isoformat(),
                "to": to,
                "template": template,
                "params": params,
                "text": render(template, params),
            },
            ensure_ascii=False,
        )
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return message_id

    def messages(self, limit: int = 50) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in reversed(lines)]


class HttpSmsSender:
    def __init__(self, url: str, secret: str, timeout: float, clock) -> None:
        if not url or not secret:
            raise ValueError("IDP_SMS_HTTP_URL and IDP_SMS_HTTP_SECRET are required")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.clock = clock

    def send(self, to: str, template: str, params: dict) -> str:
        body = json.dumps(
            {"request_id": secrets.token_hex(16), "to": to, "template": template, "params": params},
            ensure_ascii=False,
        ).encode()
        headers = signed_headers(self.secret, int(self.clock.time()), body)
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # nosec B310  # the operator's configured SMS gateway URL, not user input
                answer = json.loads(response.read(65536) or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SmsUnavailable(str(exc)) from exc
        message_id = answer.get("message_id") if isinstance(answer, dict) else None
        if not message_id:
            raise SmsUnavailable("gateway answer without message_id")
        return str(message_id)


def create_sms_sender(config: dict, clock) -> SmsSender:
    kind = config["SMS_GATEWAY"]
    if kind == "outbox":
        return OutboxSmsSender(Path(config["INSTANCE_DIR"]) / "sms-outbox.jsonl", clock)
    if kind == "http":
        return HttpSmsSender(
            config["SMS_HTTP_URL"], config["SMS_HTTP_SECRET"], config["SMS_HTTP_TIMEOUT"], clock
        )
    raise ValueError(f"unknown IDP_SMS_GATEWAY {kind!r}")
