"""/account-lookup (科技部政务服务平台（个人/企业）账号检索): the seed's answer for each case, the
login name and tab and nothing else personal; captcha, throttle per address, bad input."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.legacy.service import import_file
from tests import legacy_export as export
from tests.conftest import PASSWORD, audit_events, csrf_token, make_account, reason_of, solve_captcha
from tests.unit.test_legacy_hashes import legacy_hashes

HASHES = legacy_hashes("Torch2019!x")

# case → (what is looked up, the seed's words (part 二) the answer carries, the login name shown)
CASES = {
    "unit_new": ({"uscc": export.uscc(99)}, "需要在政务平台注册法人单位账号", None),
    "unit_existing": ({"uscc": export.uscc(98)}, "已在科技部政务服务平台注册过法人账号，直接登录账号进行实名认证", None),
    "unit_1": ({"uscc": export.U1}, "继续使用原火炬中心用户名（统一社会信用代码）和密码", export.U1),
    "unit_2": ({"uscc": export.U2}, "密码通过忘记密码找回", "unit_two_here"),
    "unit_3": ({"uscc": export.U3}, "“HJ_”加原火炬中心用户名", "HJ_" + export.U3),
    "unit_4": ({"uscc": export.U4}, "该账号自动获得了该企业的高企认定和科小企评价等业务系统授权", export.U4),
    "person_new": ({"mobile": export.mobile(99)}, "直接前往科技部政务平台注册自然人账号", None),
    "person_1": ({"mobile": export.M1}, "用原账号密码登录", "torch_wang"),
    "person_2": ({"mobile": export.M2}, "登录名为手机号", export.M2),
    "person_3": ({"mobile": export.M3}, "“HJ-”加原火炬中心用户名", "HJ-" + export.M3),
    "person_4": ({"mobile": export.M4}, "需要通过自然人申诉找回密码", None),
}
LINKS = {
    "unit_new": "/register/legal", "unit_existing": "/login?type=legal", "unit_1": "/password/forgot",
    "unit_2": "/password/forgot", "unit_3": "/login?type=legal", "unit_4": "/login?type=natural",
    "person_new": "/register/natural", "person_1": "/password/forgot", "person_2": "/login?type=natural",
    "person_3": "/login?type=natural", "person_4": "/password/appeal",
}


@pytest.fixture
def imported(app, tmp_path):
    export.existing_accounts(make_account, PASSWORD)
    make_account("legal", login_name="unit_ninety_eight", uscc=export.uscc(98))
    path = tmp_path / "torch.csv"
    path.write_bytes(export.to_csv(export.scenario_rows(HASHES)))
    import_file(path, checkpoint=db.session.commit, started_by="test")
    db.session.commit()


def look_up(app, client, **fields):
    token = csrf_token(client, "/account-lookup")
    return client.post("/account-lookup", data={"csrf_token": token, "captcha": solve_captcha(app, client, "lookup"),
                                                "uscc": "", "mobile": "", **fields})


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_is_answered_in_the_seeds_words_with_the_login_name_only(app, client, imported, case):
    fields, words, login_name = CASES[case]

    response = look_up(app, client, **fields)

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'data-case="{case}"' in page
    assert words in page
    assert LINKS[case] in page.replace("&amp;", "&")
    if login_name:
        assert f'<dd class="login-name">{login_name}</dd>' in page
    else:
        assert 'class="login-name"' not in page
    for personal in ("赵六", "王五", "张三", "示例科技有限公司", "13700137000", "13800138000"):
        assert personal not in page
    [event] = audit_events("legacy_lookup")
    assert event.details["case"] == case
    assert fields.get("uscc", fields.get("mobile")) not in (event.subject or "")


def test_full_width_input_and_a_mobile_in_another_form_are_understood(app, client, imported):
    full_width = export.U1.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHJKLMNPQRTUWXY"})
    assert 'data-case="unit_1"' in look_up(app, client, uscc=full_width.lower()).get_data(as_text=True)
    spaced = f"+86 {export.M3[:3]} {export.M3[3:7]} {export.M3[7:]}"
    assert 'data-case="person_3"' in look_up(app, client, mobile=spaced).get_data(as_text=True)


@pytest.mark.parametrize("fields, field_name", [
    ({"uscc": export.U1[:-1] + ("0" if export.U1[-1] != "0" else "1")}, "uscc"),
    ({"mobile": "12345"}, "mobile"),
])
def test_a_bad_uscc_or_mobile_is_refused_at_its_field(app, client, imported, fields, field_name):
    response = look_up(app, client, **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="{field_name}-error"' in page and "data-case" not in page


def test_both_or_neither_is_refused(app, client, imported):
    assert reason_of(look_up(app, client)) == "one_of_uscc_or_mobile"
    assert reason_of(look_up(app, client, uscc=export.U1, mobile=export.M1)) == "one_of_uscc_or_mobile"


def test_a_wrong_captcha_answers_nothing(app, client, imported):
    token = csrf_token(client, "/account-lookup")
    solve_captcha(app, client, "lookup")
    response = client.post("/account-lookup", data={"csrf_token": token, "captcha": "wrong", "uscc": export.U1})
    assert response.status_code == 400
    assert "data-case" not in response.get_data(as_text=True)
    assert audit_events("captcha_failed")


def test_without_the_csrf_token_nothing_is_looked_up(app, client, imported):
    response = client.post("/account-lookup", data={"uscc": export.U1})
    assert response.status_code == 400
    assert "data-case" not in response.get_data(as_text=True)


def test_lookups_are_throttled_per_address(app, client, imported):
    app.config["LOOKUP_MAX_PER_ADDRESS"] = 3
    for _ in range(3):
        assert look_up(app, client, uscc=export.U1).status_code == 200

    refused = look_up(app, client, uscc=export.U1)

    assert refused.status_code == 429
    assert reason_of(refused) == "address_throttled" and "data-case" not in refused.get_data(as_text=True)
    other = app.test_client()  # another address is not held up
    assert look_up(app, other, uscc=export.U1, environ_base=None).status_code in (200, 429)
