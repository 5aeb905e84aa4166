"""Password recovery: helpers that walk the pages as a browser would."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import csrf_token, outbox_codes, solve_captcha

NEW_PASSWORD = "N3w-Secret!x"
PHONE = "13800138000"
UNIT = {"org_name": "福州示例有限公司", "uscc": "91350100M000100Y43"}


@pytest.fixture
def settings(settings, request):
    settings.update({"RECOVERY_ANSWER_FLOOR": 0})
    settings.update(getattr(request, "param", {}))
    return settings


def look_up(app, client, login_name, account_type="natural"):
    token = csrf_token(client, "/password/reset?restart=1")
    answer = solve_captcha(app, client, "recovery") if app.config["CAPTCHA"] == "on" else ""
    return client.post("/password/reset", data={"csrf_token": token, "account_type": account_type,
                                                "login_name": login_name, "captcha": answer})


def send_code(client, phone=PHONE, confirm=None, **unit):
    token = csrf_token(client, "/password/reset")
    return client.post("/password/reset", data={"csrf_token": token, "phone": phone,
                                                "phone_confirm": confirm or phone, "send_code": "1", **unit})


def reset(client, code, phone=PHONE, password=NEW_PASSWORD, confirm=None, **unit):
    token = csrf_token(client, "/password/reset")
    return client.post("/password/reset", data={
        "csrf_token": token, "phone": phone, "phone_confirm": phone, "reason": "忘记了",
        "new_password": password, "new_password_confirm": confirm or password, "sms_code": code, **unit})


def last_code(app):
    codes = outbox_codes(app)
    return codes[-1] if codes else None


def outbox(app, name="sms-outbox.jsonl"):
    path = Path(app.config["INSTANCE_DIR"]) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def mails(app):
    return outbox(app, "mail-outbox.jsonl")


@pytest.fixture(autouse=True)
def _empty_mail_outbox(app):
    (Path(app.config["INSTANCE_DIR"]) / "mail-outbox.jsonl").unlink(missing_ok=True)


def photo(fmt="JPEG", size=(64, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, fmt)
    return out.getvalue()
