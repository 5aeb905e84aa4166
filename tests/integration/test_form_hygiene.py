"""Hostile form input beyond invalid UTF-8: too many fields, and invisible format characters
(bidirectional overrides, zero-width characters) in text fields."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from idp.extensions import db
from idp.http import MAX_FORM_FIELDS
from idp.models.audit import AuditEvent
from tests.conftest import (
    PASSWORD,
    csrf_token,
    login,
    make_account,
    session_data,
    solve_captcha,
)
from tests.integration.test_profile import natural_edit, reload, snapshot
from tests.integration.test_registration import (
    PHONE,
    account_count,
    assert_error_at,
    fresh_code,
    natural_data,
    post_registration,
)

# --- too many fields ---------------------------------------------------------------------------


def login_body(token: str, answer: str, extra_fields: int) -> str:
    fields = {"csrf_token": token, "account_type": "natural", "login_name": "zhang_san",
              "password": PASSWORD, "captcha": answer}
    body = "&".join(f"{k}={quote(v)}" for k, v in fields.items())
    return body + "".join(f"&f{i}=" for i in range(extra_fields))


def post_body(client, body: str):
    return client.post("/login", data=body, content_type="application/x-www-form-urlencoded")


def test_a_form_with_more_fields_than_the_cap_gets_a_clear_413_page(app, client):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    response = post_body(client, login_body(token, answer, MAX_FORM_FIELDS))  # 5 + 1000 fields
    assert response.status_code == 413
    assert 'data-reason="http_413"' in response.get_data(as_text=True)
    assert not session_data(app, client).get("account_id")
    refused = db.session.execute(db.select(AuditEvent).filter_by(event="request_refused")).scalars().all()
    assert refused and refused[-1].details == {"reason": "too_large"}


def test_a_form_with_as_many_fields_as_the_cap_is_read(app, client):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    response = post_body(client, login_body(token, answer, MAX_FORM_FIELDS - 5))  # exactly 1000
    assert response.status_code == 302
    assert session_data(app, client).get("account_id")


# --- invisible format characters (Unicode category Cf) -----------------------------------------

FORMAT_CHARACTERS = [
    pytest.param("\u202e", id="right-to-left override"),
    pytest.param("\u202d", id="left-to-right override"),
    pytest.param("\u202a", id="left-to-right embedding"),
    pytest.param("\u2067", id="right-to-left isolate"),
    pytest.param("\u200f", id="right-to-left mark"),
    pytest.param("\u200b", id="zero width space"),
    pytest.param("\u200c", id="zero width non-joiner"),
    pytest.param("\u200d", id="zero width joiner"),
    pytest.param("\u2060", id="word joiner"),
    pytest.param("\ufeff", id="byte order mark"),
    pytest.param("\u00ad", id="soft hyphen"),
    pytest.param("\U000e0041", id="tag character"),
]


@pytest.mark.parametrize("character", FORMAT_CHARACTERS)
def test_a_format_character_in_a_name_is_refused_at_registration(app, client, character):
    code = fresh_code(app, client, PHONE)
    data = natural_data(code, name=f"李{character}四")
    response = post_registration(client, "natural", data)
    assert_error_at(response, "name", data)
    assert account_count() == 0


@pytest.mark.parametrize("field", ["name", "job_title", "address", "document_valid_until"])
def test_a_bidi_override_in_a_profile_text_field_is_refused_and_nothing_changes(app, client, field):
    account = make_account(login_name="zhang_san")
    before = snapshot(reload(account.id))
    login(app, client, "zhang_san")
    data = natural_edit(**{field: "abc\u202efed"})
    response = client.post("/center/profile/edit",
                           data={**data, "csrf_token": csrf_token(client, "/center/profile/edit")})
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    after = snapshot(reload(account.id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_a_format_character_in_the_login_name_is_refused_not_normalised_away(app, client):
    make_account(login_name="zhang_san")
    token = csrf_token(client, "/login")
    response = client.post("/login", data={
        "csrf_token": token, "account_type": "natural", "login_name": "zhang\u200b_san",
        "password": PASSWORD, "captcha": solve_captcha(app, client),
    })
    assert response.status_code == 400
    assert 'id="login_name-error"' in response.get_data(as_text=True)


@pytest.mark.parametrize("value", ["张三", "José Martínez-Núñez", "O'Brien", "Anne\tMarie", "北京市\n海淀区"],
                         ids=["Chinese", "accented Latin", "apostrophe", "tab", "new line"])
def test_ordinary_names_and_addresses_are_accepted(app, client, value):
    account = make_account(login_name="zhang_san")
    login(app, client, "zhang_san")
    field = "address" if "\n" in value else "name"
    data = natural_edit(**{field: value})
    response = client.post("/center/profile/edit",
                           data={**data, "csrf_token": csrf_token(client, "/center/profile/edit")})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert getattr(reload(account.id), field) == value
