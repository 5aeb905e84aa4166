"""The e-mail channel: confirming an address in the user centre by a code, the reset link
(signed, single use, at most 30 minutes, a newer link voids older ones), the development
outbox, and the SMTP sender against a real SMTP server started here (STARTTLS, TLS, AUTH, and
its failures: a clear message, nothing spent)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from idp.extensions import db, services
from idp.models.accounts import DISABLED, Account
from tests.conftest import PASSWORD, audit_events, csrf_token, login, make_account, reason_of
from tests.recovery.conftest import NEW_PASSWORD, UNIT, look_up, mails
from tests.recovery.smtp_server import SmtpServer
from tests.recovery.test_reset_by_phone import password_is

EMAIL = "zhangsan@example.cn"


def confirmed_person(**profile):
    account = make_account(email=EMAIL, **profile)
    account.email_verified = True
    db.session.commit()
    return account


def ask_link(client, email=EMAIL, confirm=None, **unit):
    token = csrf_token(client, "/password/reset?method=email")
    return client.post("/password/reset", data={"csrf_token": token, "method": "email", "email": email,
                                                "email_confirm": confirm or email, "reason": "忘记了",
                                                "send_link": "1", **unit})


def link_path(app) -> str:
    return urlsplit([m for m in mails(app) if m["template"] == "password_reset_link"][-1]["params"]["link"]).path


def use_link(client, path, password=NEW_PASSWORD):
    token = csrf_token(client, "/password/appeal")  # any form of this browser's session
    return client.post(path, data={"csrf_token": token, "new_password": password,
                                   "new_password_confirm": password})


# --- confirming the address ------------------------------------------------------------------


def test_an_email_address_is_confirmed_by_a_code(app, client):
    account = make_account(email=EMAIL)
    login(app, client, "zhang_san")
    assert 'data-link="confirm-email"' in client.get("/center/profile").get_data(as_text=True)
    page = client.get("/center/email").get_data(as_text=True)
    assert 'data-email-status="unconfirmed"' in page and EMAIL not in page  # masked
    token = csrf_token(client, "/center/email")
    sent = client.post("/center/email", data={"csrf_token": token, "send_code": "1"})
    assert reason_of(sent) == "sent"
    [mail] = mails(app)
    assert mail["to"] == EMAIL and mail["template"] == "email_confirmation_code"
    code = mail["params"]["code"]
    wrong = client.post("/center/email", data={"csrf_token": token, "email_code": f"{(int(code) + 1) % 10**6:06d}"})
    assert wrong.status_code == 400 and 'id="email_code-error"' in wrong.get_data(as_text=True)
    db.session.expire_all()
    assert not db.session.get(Account, account.id).email_verified
    done = client.post("/center/email", data={"csrf_token": token, "email_code": code})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Account, account.id).email_verified
    again = client.post("/center/email", data={"csrf_token": token, "email_code": code}, follow_redirects=True)
    assert again.status_code == 200 and 'data-email-status="confirmed"' in again.get_data(as_text=True)


def test_a_changed_address_must_be_confirmed_again(app):
    from idp.accounts.service import update_profile

    account = confirmed_person()
    update_profile(account, {"email": "new@example.cn"})
    db.session.expire_all()
    assert not db.session.get(Account, account.id).email_verified


# --- the reset link --------------------------------------------------------------------------


def test_a_person_resets_by_the_emailed_link(app, client):
    account = confirmed_person()
    look_up(app, client, "zhang_san")
    assert "电子邮箱" in client.get("/password/reset?method=email").get_data(as_text=True)
    sent = ask_link(client)
    assert sent.status_code == 200 and reason_of(sent) == "sent"
    path = link_path(app)
    assert client.get(path).status_code == 200
    done = use_link(client, path)
    assert done.status_code == 302 and done.headers["Location"].endswith("/password/reset/done")
    assert "重置密码已完成" in client.get("/password/reset/done").get_data(as_text=True)
    assert password_is(account.id, NEW_PASSWORD)
    assert mails(app)[-1]["template"] == "password_recovered"  # the confirmed address is told
    # used twice: refused, nothing changes
    again = use_link(client, path, "Other-Pass9!")
    assert again.status_code == 410 and reason_of(again) == "link_used_or_replaced"
    assert password_is(account.id, NEW_PASSWORD)


def test_a_unit_resets_by_link_with_unit_name_and_uscc(app, client):
    account = make_account("legal", "fz_unit", email=EMAIL)
    account.email_verified = True
    db.session.commit()
    look_up(app, client, "fz_unit", "legal")
    ask_link(client, **{**UNIT, "uscc": "91110000600037341L"})
    assert not mails(app)  # the USCC does not match: nothing sent, same answer
    ask_link(client, **UNIT)
    assert use_link(client, link_path(app)).status_code == 302
    assert password_is(account.id, NEW_PASSWORD)


def test_a_newer_link_voids_the_older(app, client):
    account = confirmed_person()
    look_up(app, client, "zhang_san")
    ask_link(client)
    older = link_path(app)
    ask_link(client)
    newer = link_path(app)
    assert older != newer
    refused = use_link(client, older)
    assert refused.status_code == 410 and reason_of(refused) == "link_used_or_replaced"
    assert password_is(account.id, PASSWORD)
    assert use_link(client, newer).status_code == 302


def test_a_link_expires_after_thirty_minutes(app, client, clock):
    account = confirmed_person()
    look_up(app, client, "zhang_san")
    ask_link(client)
    clock.advance(1801)
    refused = client.get(link_path(app))
    assert refused.status_code == 410 and reason_of(refused) in ("link_expired", "link_used_or_replaced")
    assert password_is(account.id, PASSWORD)


def test_a_forged_link_is_refused(app, client):
    confirmed_person()
    look_up(app, client, "zhang_san")
    ask_link(client)
    path = link_path(app)
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert reason_of(client.get(forged)) == "link_invalid"


def test_an_unconfirmed_or_other_address_gets_nothing_and_the_same_answer(app, client):
    make_account(email=EMAIL)  # not confirmed
    look_up(app, client, "zhang_san")
    unconfirmed = ask_link(client)
    other = ask_link(client, "someone@example.cn")
    assert not mails(app)
    assert unconfirmed.status_code == other.status_code == 200
    assert reason_of(unconfirmed) == reason_of(other) == "sent"


def test_the_email_must_be_typed_twice_alike(app, client):
    confirmed_person()
    look_up(app, client, "zhang_san")
    response = ask_link(client, EMAIL, "other@example.cn")
    assert response.status_code == 400 and 'id="email_confirm-error"' in response.get_data(as_text=True)
    assert not mails(app)


def test_a_disabled_account_link_says_contact_support(app, client):
    account = confirmed_person()
    look_up(app, client, "zhang_san")
    ask_link(client)
    account.status = DISABLED
    db.session.commit()
    response = client.get(link_path(app))
    assert response.status_code == 403 and reason_of(response) == "account_disabled"


def test_mails_to_one_address_are_capped(app, client):
    app.config["RECOVERY_MAILS_PER_ADDRESS_PER_DAY"] = 2
    confirmed_person()
    look_up(app, client, "zhang_san")
    assert reason_of(ask_link(client)) == "sent"
    assert reason_of(ask_link(client)) == "sent"
    capped = ask_link(client)
    assert capped.status_code == 429 and reason_of(capped) == "mail_cap"
    assert len(mails(app)) == 2


def test_the_development_page_lists_the_mail_outbox(app, client):
    confirmed_person()
    look_up(app, client, "zhang_san")
    ask_link(client)
    page = client.get("/dev/sms-outbox").get_data(as_text=True)
    assert 'id="mail-outbox"' in page and "重置密码" in page


# --- the SMTP sender against a real server ----------------------------------------------------


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer(tmp_path, username="idp", password="relay-secret")
    yield server
    server.stop()


@pytest.fixture
def settings(settings, request):
    settings.update({"RECOVERY_ANSWER_FLOOR": 0})
    if "smtp" in request.fixturenames:
        server = request.getfixturevalue("smtp")
        settings.update({"MAIL_SENDER": "smtp", "MAIL_SMTP_HOST": "localhost", "MAIL_SMTP_PORT": server.port,
                         "MAIL_SMTP_TLS": "starttls", "MAIL_FROM": "noreply@idp.example.cn",
                         "MAIL_SMTP_USERNAME": "idp", "MAIL_SMTP_PASSWORD": "relay-secret",
                         "MAIL_SMTP_CA_FILE": str(server.cert), "MAIL_SMTP_TIMEOUT": 2})
    return settings


def test_the_link_is_delivered_over_starttls_with_authentication(app, client, smtp):
    account = confirmed_person()
    look_up(app, client, "zhang_san")
    assert reason_of(ask_link(client)) == "sent"
    [message] = smtp.messages
    assert message["to"] == [EMAIL] and message["tls"] is True and message["from"] == "noreply@idp.example.cn"
    assert "重置密码" in message["subject"]
    path = urlsplit(re.search(r"https?://\S+", message["body"]).group(0)).path
    assert use_link(client, path).status_code == 302
    assert password_is(account.id, NEW_PASSWORD)
    assert smtp.sessions[-1]["auth"] == "idp"


@pytest.mark.parametrize("mode", ["unavailable", "refuse_recipient", "refuse_recipient_quoting"])
def test_a_failing_mail_server_gives_a_clear_message_and_spends_nothing(app, client, smtp, mode):
    app.config["RECOVERY_MAILS_PER_ADDRESS_PER_DAY"] = 1
    confirmed_person()
    look_up(app, client, "zhang_san")
    smtp.mode = mode
    failed = ask_link(client)
    assert failed.status_code == 503 and reason_of(failed) == "mail_unavailable"
    assert "邮件服务暂不可用" in failed.get_data(as_text=True)
    [event] = audit_events("mail_unavailable")
    assert EMAIL not in str(event.details).lower()  # a 550 quotes the address; the log keeps it masked
    smtp.mode = "ok"
    assert reason_of(ask_link(client)) == "sent"  # the cap of one was not spent by the failure
    assert len(smtp.messages) == 1


def test_a_server_certificate_not_trusted_is_a_failure(app, client, smtp):
    app.extensions["idp.services"].mail.context = __import__("ssl").create_default_context()  # system CAs only
    confirmed_person()
    look_up(app, client, "zhang_san")
    assert reason_of(ask_link(client)) == "mail_unavailable"
    assert not smtp.messages


def test_tls_from_the_first_byte(app, tmp_path):
    from idp.services.mail import SmtpMailSender

    server = SmtpServer(tmp_path, implicit_tls=True)
    try:
        sender = SmtpMailSender("127.0.0.1", server.port, "tls", "noreply@idp.example.cn", timeout=2,
                                ca_file=str(server.cert))
        sender.send(EMAIL, "email_confirmation_code", {"code": "123456", "minutes": 5})
        [message] = server.messages
        assert message["tls"] is True and "123456" in message["body"]
    finally:
        server.stop()


def test_a_confirmation_code_over_smtp_and_its_failure(app, client, smtp):
    account = make_account(email=EMAIL)
    login(app, client, "zhang_san")
    token = csrf_token(client, "/center/email")
    smtp.mode = "refuse_recipient_quoting"
    failed = client.post("/center/email", data={"csrf_token": token, "send_code": "1"})
    assert failed.status_code == 503 and reason_of(failed) == "mail_unavailable"
    assert all(EMAIL not in str(event.details).lower() for event in audit_events("mail_unavailable"))
    smtp.mode = "ok"
    assert reason_of(client.post("/center/email", data={"csrf_token": token, "send_code": "1"})) == "sent"
    code = re.search(r"\d{6}", smtp.messages[-1]["body"]).group(0)
    assert client.post("/center/email", data={"csrf_token": token, "email_code": code}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Account, account.id).email_verified


PRODUCTION = {"ENV": "production", "ISSUER": "https://login.example.cn",
              "DATABASE_URL": "postgresql+psycopg://x@127.0.0.1/x", "SMS_GATEWAY": "http",
              "SMS_HTTP_URL": "https://sms.example.cn/send", "SMS_HTTP_SECRET": "s", "VERIFIER": "http",
              "VERIFIER_URL": "https://verify.example.cn/check", "SECRET_KEY": "k" * 40}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"MAIL_SENDER": "outbox"}, "IDP_MAIL_SENDER=outbox is refused"),
    ({"MAIL_SENDER": "smtp"}, "needs IDP_MAIL_SMTP_HOST"),
])
def test_production_refuses_the_mail_outbox_and_an_incomplete_smtp(overrides, message, tmp_path):
    from idp.settings import ConfigurationError, load_settings

    with pytest.raises(ConfigurationError, match=message):
        load_settings({**PRODUCTION, "INSTANCE_DIR": str(tmp_path), **overrides})


def test_the_default_mail_sender_is_the_outbox_in_development_and_none_in_production(tmp_path):
    from idp.settings import load_settings

    assert load_settings({"ENV": "development", "INSTANCE_DIR": str(tmp_path)})["MAIL_SENDER"] == "outbox"
    assert load_settings({**PRODUCTION, "INSTANCE_DIR": str(tmp_path)})["MAIL_SENDER"] == "off"
