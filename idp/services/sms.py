"""The SMS gateway role: sends a templated text message to one phone.

Implementations: ``OutboxSmsSender`` (development: JSON lines appended to a file and listed on
a development-only page) and ``HttpSmsSender`` (the operator's signed JSON interface).
Chosen by ``IDP_SMS_GATEWAY``.

The gateway is a service the operator configures and the user waits for (a code is sent while
the page answers), so the call is made in the request, but through ``idp.security.outbound``
like every outbound call: https in production, the address checked and pinned, no redirects,
a timeout and a response cap. The gateway's answer is not signed (INTERFACES.md fixes only
``{"message_id"}``): nothing is decided on it beyond "sent", and a forged answer can only hide
a failed send, which the user notices by not receiving the code.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Protocol

from idp.security import outbound
from idp.security.signing import signed_headers
from idp.services.outbox import Outbox

# Message texts by template; the operator holds its own copies of approved templates.
TEMPLATES = {
    "verification_code": "【科技部政务服务平台】您的验证码为{code}，{minutes}分钟内有效，请勿泄露给他人。",
    "verification_approved": "【科技部政务服务平台】您的实名认证已通过人工审核（已审核认证）。",
    "verification_rejected": "【科技部政务服务平台】您的实名认证未通过人工审核，原因：{reason}。"
                             "请登录后在“我的信息”中查看并重新上传。",
    "delegation_granted": "【科技部政务服务平台】{unit}已授权您代表其办理业务，有效期至{until}。"
                          "请登录后在“我的信息”→“法人(单位)授权办理情况”中查看。",
    "delegation_revoked": "【科技部政务服务平台】{unit}对您的授权已撤销，您不能再代表其办理业务。",
    "password_recovered": "【科技部政务服务平台】登录名{login_name}的密码已于{time}重置，所有已登录的会话均已退出。"  # nosec B105  # a message text
                          "如非本人操作，请立即联系技术支持：010-88659000。",
    "appeal_approved": "【科技部政务服务平台】您的申诉找回密码已通过审核。登录名：{login_name}，临时密码：{password}。"
                       "请尽快登录，登录时须设置新密码。",
    "appeal_rejected": "【科技部政务服务平台】您的申诉找回密码未通过审核，原因：{reason}。",
}


class SmsUnavailable(RuntimeError):
    """The gateway could not take the message (timeout, refused, 5xx, bad answer)."""


class SmsSender(Protocol):
    def send(self, to: str, template: str, params: dict) -> str:
        """Send and return the gateway's message id, or raise SmsUnavailable."""


def render(template: str, params: dict) -> str:
    return TEMPLATES[template].format(**params)


class OutboxSmsSender(Outbox):
    def send(self, to: str, template: str, params: dict) -> str:
        return self._write(to, template, params, text=render(template, params))


class HttpSmsSender:
    def __init__(self, url: str, secret: str, timeout: float, clock, *, policy: outbound.Policy) -> None:
        if not url or not secret:
            raise ValueError("IDP_SMS_HTTP_URL and IDP_SMS_HTTP_SECRET are required")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.clock = clock
        self.policy = policy

    def send(self, to: str, template: str, params: dict) -> str:
        body = json.dumps(
            {"request_id": secrets.token_hex(16), "to": to, "template": template, "params": params},
            ensure_ascii=False,
        ).encode()
        headers = signed_headers(self.secret, int(self.clock.time()), body)
        try:
            response = outbound.post(self.url, body, headers, policy=self.policy, timeout=self.timeout,
                                     purpose="sms_gateway")
            if not 200 <= response.status < 300:
                raise SmsUnavailable(f"gateway answered {response.status}")
            answer = json.loads(response.body or b"{}")
        except (outbound.OutboundRefused, outbound.OutboundFailed, ValueError) as exc:
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
            config["SMS_HTTP_URL"], config["SMS_HTTP_SECRET"], config["SMS_HTTP_TIMEOUT"], clock,
            policy=outbound.Policy.from_config(config),
        )
    raise ValueError(f"unknown IDP_SMS_GATEWAY {kind!r}")
