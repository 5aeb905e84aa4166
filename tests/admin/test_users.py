"""User management in the staff console: search, the masked account page, the staff actions.

Superadmins may do everything; support staff may only look (every POST that changes something
is 403 for them); reviewers and client managers do not see users at all. Assertions use reason
codes (``data-reason``), status codes and the database / store state, not the wording.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest

from idp.extensions import db, services
from idp.login import handlers
from idp.models.accounts import ACTIVE, DISABLED, Account
from idp.models.audit import AuditEvent
from idp.models.oauth import Job, RefreshToken
from tests.admin.conftest import form_token
from tests.conftest import PASSWORD, login, make_account, session_data, reason_of
from tests.oidc.conftest import relying_party

ACTIONS = ("lock", "unlock", "disable", "enable", "force-password-change", "end-sessions")
PERSON_DOCUMENT = "11010519491231002X"


@pytest.fixture
def settings(settings):
    """Captcha off so that users (and relying parties) sign in with a plain POST; jobs queued
    rather than run, so that back-channel logouts can be counted without a receiver."""
    settings["CAPTCHA"] = "off"
    settings["JOBS_INLINE"] = False
    return settings


@pytest.fixture
def person(app):
    return make_account("natural", "zhang_san", name="张三", phone="13800138000", email="zhangsan@example.cn",
                        identity_region="mainland", document_type="resident_id", document_number=PERSON_DOCUMENT,
                        address="北京市海淀区中关村大街1号")


@pytest.fixture
def admin(console):
    return console("superadmin")


@pytest.fixture
def support(console):
    return console("support")


# --- helpers -------------------------------------------------------------------------------


def text(response) -> str:
    return response.get_data(as_text=True)


def result_logins(response) -> list[str]:
    rows = re.findall(r'<tr data-account="[^"]+"[^>]*>\s*<td><a href="[^"]+">([^<]*)</a>', text(response))
    return [unescape(r) for r in rows]


def search(c, kind: str, q: str, follow: bool = True):
    token = form_token(text(c.get("/admin/users/")))
    response = c.post("/admin/users/", data={"csrf_token": token, "kind": kind, "q": q})
    if follow and response.status_code == 302:
        target = urlsplit(response.headers["Location"])
        response = c.get(target.path + "?" + target.query)
    return response


def act(c, account: Account, action: str, confirm: bool = True, **data):
    token = form_token(text(c.get(f"/admin/users/{account.sub}")))
    if confirm:
        data["confirm"] = "y"
    return c.post(f"/admin/users/{account.sub}/{action}", data={"csrf_token": token, **data})


def user_login(app, login_name: str = "zhang_san", password: str = PASSWORD):
    browser = app.test_client()
    return browser, login(app, browser, login_name, password, captcha="")


def staff_actions(subject: str | None = None) -> list[dict]:
    db.session.expire_all()
    query = db.select(AuditEvent).filter_by(event="staff_action").order_by(AuditEvent.id)
    if subject:
        query = query.filter_by(subject=subject)
    return [{"actor": e.actor, "subject": e.subject, **(e.details or {})}
            for e in db.session.execute(query).scalars()]


def reload(account: Account) -> Account:
    db.session.expire_all()
    return db.session.get(Account, account.id)


# --- who may do what -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["superadmin", "support"])
def test_superadmin_and_support_can_search_and_open_an_account(console, person, role):
    c = console(role)
    assert c.get("/admin/users/").status_code == 200
    assert result_logins(search(c, "login_name", "zhang_san")) == ["zhang_san"]
    assert c.get(f"/admin/users/{person.sub}").status_code == 200


@pytest.mark.parametrize("role", ["reviewer", "client_manager"])
def test_reviewers_and_client_managers_get_403_on_every_user_page(console, person, role):
    c = console(role)
    assert c.get("/admin/users/").status_code == 403
    assert c.get("/admin/users/?kind=login_name&q=zhang").status_code == 403
    assert c.get(f"/admin/users/{person.sub}").status_code == 403
    token = form_token(text(c.get("/admin/")))
    assert c.post("/admin/users/", data={"csrf_token": token, "kind": "login_name", "q": "zhang"}).status_code == 403
    for action in ACTIONS:
        response = c.post(f"/admin/users/{person.sub}/{action}",
                          data={"csrf_token": token, "confirm": "y", "minutes": "60"})
        assert response.status_code == 403, action


@pytest.mark.parametrize("action", ACTIONS)
def test_support_staff_get_403_on_every_action_and_nothing_changes(app, support, person, action):
    token = form_token(text(support.get(f"/admin/users/{person.sub}")))
    response = support.post(f"/admin/users/{person.sub}/{action}",
                            data={"csrf_token": token, "confirm": "y", "minutes": "60"})
    assert response.status_code == 403
    account = reload(person)
    assert account.status == ACTIVE and not account.must_change_password
    assert handlers.locked_until(account) is None
    assert staff_actions("zhang_san") == []


def test_support_staff_see_no_action_forms(support, person):
    page = text(support.get(f"/admin/users/{person.sub}"))
    assert "data-action=" not in page
    assert "/lock" not in page and "/disable" not in page


def test_the_users_menu_entry_appears_for_those_who_may_see_users(console):
    assert 'href="/admin/users/"' in text(console("superadmin").get("/admin/"))
    assert 'href="/admin/users/"' in text(console("support").get("/admin/"))
    assert 'href="/admin/users/"' not in text(console("reviewer").get("/admin/"))


def test_a_visitor_who_is_not_signed_in_is_sent_to_the_console_sign_in(client, person):
    for path in ("/admin/users/", f"/admin/users/{person.sub}"):
        response = client.get(path)
        assert response.status_code == 302
        assert urlsplit(response.headers["Location"]).path == "/admin/login"


def test_an_unknown_account_is_404(admin):
    assert admin.get("/admin/users/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin.get("/admin/users/" + "x" * 200).status_code == 404


# --- search --------------------------------------------------------------------------------


def test_a_login_name_is_found_by_its_beginning_with_the_exact_match_first(admin):
    make_account("natural", "zhang_san_2", phone="13900139000")
    make_account("natural", "zhang", phone="13900139001")
    make_account("natural", "li_si", phone="13900139002")
    assert result_logins(search(admin, "login_name", "zhang")) == ["zhang", "zhang_san_2"]
    assert result_logins(search(admin, "login_name", "ZHANG_SAN_2")) == ["zhang_san_2"]
    assert result_logins(search(admin, "login_name", "wang")) == []


def test_a_name_is_found_by_a_part_of_it(admin):
    make_account("natural", "zhang_san", name="张三", phone="13900139000")
    make_account("natural", "zhang_sanfeng", name="张三丰", phone="13900139001")
    make_account("natural", "li_si", name="李四", phone="13900139002")
    assert sorted(result_logins(search(admin, "name", "三"))) == ["zhang_san", "zhang_sanfeng"]
    assert result_logins(search(admin, "name", "三丰")) == ["zhang_sanfeng"]


def test_a_uscc_is_found_exactly_whatever_its_case(admin):
    make_account("legal", "fz_unit", uscc="91350100M000100Y43", org_name="福州示例有限公司")
    make_account("legal", "bj_unit", uscc="91110000600037341L", org_name="北京示范科技有限公司")
    assert result_logins(search(admin, "uscc", "91350100m000100y43")) == ["fz_unit"]
    assert result_logins(search(admin, "uscc", "91350100")) == []


def test_a_unit_name_is_found_by_a_part_of_it(admin):
    make_account("legal", "fz_unit", uscc="91350100M000100Y43", org_name="福州示例有限公司")
    make_account("legal", "bj_unit", uscc="91110000600037341L", org_name="北京示范科技有限公司")
    assert result_logins(search(admin, "org_name", "示例")) == ["fz_unit"]
    assert sorted(result_logins(search(admin, "org_name", "有限公司"))) == ["bj_unit", "fz_unit"]


def test_a_phone_is_found_through_its_keyed_hash_and_never_shown_in_clear(admin, person):
    make_account("natural", "li_si", phone="13900139000")
    response = search(admin, "phone", "+86 138-0013-8000", follow=False)
    assert response.status_code == 200  # answered at once: no address with the number in it
    page = text(response)
    assert result_logins(response) == ["zhang_san"]
    assert "138****8000" in page
    assert "13800138000" not in page and "138-0013-8000" not in page and "0013" not in page


def test_search_results_show_type_name_masked_phone_status_and_lock(admin, person):
    services().store.set(f"lock:account:{person.id}", str(services().clock.time() + 600).encode(), 600)
    page = text(search(admin, "login_name", "zhang_san"))
    row = re.search(rf'<tr data-account="{person.sub}".*?</tr>', page, re.S).group(0)
    assert 'data-status="active"' in row
    assert "张三" in row and "138****8000" in row and "13800138000" not in row
    assert 'data-locked="1"' in row


def test_a_phone_number_in_the_address_is_not_searched(admin, person):
    response = admin.get("/admin/users/?kind=phone&q=13800138000")
    assert response.status_code == 400
    assert reason_of(response) == "phone_search_by_form"
    assert "13800138000" not in text(response)
    assert result_logins(response) == []


def test_a_wrong_phone_number_gets_a_clear_message_and_is_not_echoed(admin, person):
    response = search(admin, "phone", "1391234567")
    assert response.status_code == 400
    assert reason_of(response) == "invalid_phone"
    assert "1391234567" not in text(response)


@pytest.mark.parametrize("q, reason", [("", "query_empty"), ("   ", "query_empty"), ("z" * 101, "query_too_long")])
def test_an_empty_or_too_long_search_gets_a_clear_message_and_keeps_the_input(admin, person, q, reason):
    response = search(admin, "name", q)
    assert response.status_code == 400
    assert reason_of(response) == reason
    if q.strip():
        assert f'value="{q}"' in text(response)  # nothing the user typed is lost


def test_a_search_of_exactly_100_characters_is_accepted(admin, person):
    response = search(admin, "name", "张" * 100)
    assert response.status_code == 200 and result_logins(response) == []


def test_an_unknown_search_kind_is_refused_clearly(admin, person):
    assert reason_of(admin.get("/admin/users/?kind=document&q=x")) == "unknown_kind"


def test_a_search_with_control_characters_is_refused(admin, person):
    response = search(admin, "name", "张\u202e三")
    assert response.status_code == 400 and reason_of(response) == "invalid_characters"


@pytest.mark.parametrize("kind", ["login_name", "name", "org_name", "uscc"])
@pytest.mark.parametrize("q", ["%", "_", "*", "\\", "%%", "' OR 1=1 --", "'; DROP TABLE accounts; --",
                               "<script>alert(1)</script>"])
def test_wildcards_and_sql_are_searched_literally_and_shown_escaped(admin, person, kind, q):
    make_account("legal", "fz_unit", uscc="91350100M000100Y43", org_name="福州示例有限公司")
    response = search(admin, kind, q)
    assert response.status_code == 200, reason_of(response)
    assert result_logins(response) == []
    page = text(response)
    assert "<script>alert(1)</script>" not in page
    if q.startswith("<script>"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # kept in the box, escaped
    assert db.session.execute(db.select(db.func.count(Account.id))).scalar_one() == 2


def test_like_wildcards_match_only_themselves(admin):
    make_account("natural", "zhang_san", name="完成100%", phone="13900139000")
    make_account("natural", "zhangxsan", name="完成1000", phone="13900139001")
    make_account("natural", "a_b_c_d", name="下划_线", phone="13900139002")
    assert result_logins(search(admin, "login_name", "zhang_")) == ["zhang_san"]
    assert result_logins(search(admin, "name", "100%")) == ["zhang_san"]
    assert result_logins(search(admin, "name", "%")) == ["zhang_san"]
    assert result_logins(search(admin, "name", "_")) == ["a_b_c_d"]
    assert result_logins(search(admin, "login_name", "a_b_")) == ["a_b_c_d"]


def test_results_come_fifty_to_a_page(admin):
    for n in range(51):
        account = Account(account_type="natural", login_name=f"user{n:04d}", login_name_key=f"user{n:04d}",
                          name="批量")
        db.session.add(account)
    db.session.commit()
    first = search(admin, "name", "批量")
    assert len(result_logins(first)) == 50 and 'data-total="51"' in text(first)
    assert 'rel="next"' in text(first)
    second = admin.get("/admin/users/?kind=name&q=批量&page=2")
    assert result_logins(second) == ["user0050"]
    assert admin.get("/admin/users/?kind=name&q=批量&page=abc").status_code == 200


# --- the account page ----------------------------------------------------------------------


def test_the_account_page_shows_the_profile_masked(admin, person):
    page = text(admin.get(f"/admin/users/{person.sub}"))
    for masked in ("110105********002X", "138****8000", "z***@example.cn", "1949-**-**"):
        assert masked in page
    for clear in (PERSON_DOCUMENT, "13800138000", "zhangsan@example.cn", "1949-12-31", "中关村大街1号"):
        assert clear not in page
    assert 'data-status="active"' in page and 'data-status="unverified"' in page
    assert 'data-locked="0"' in page


def test_the_account_page_lists_the_active_sessions(app, admin, person):
    user_login(app)
    user_login(app)
    page = text(admin.get(f"/admin/users/{person.sub}"))
    assert len(re.findall(r"<tr data-session=", page)) == 2


# --- the actions ---------------------------------------------------------------------------


def test_a_locked_account_is_refused_at_login_until_the_lock_ends(app, admin, person, clock):
    response = act(admin, person, "lock", minutes="30")
    assert response.status_code == 302
    assert services().store.ttl(f"lock:account:{person.id}") == pytest.approx(1800)
    _, refused = user_login(app)
    assert refused.status_code == 401 and reason_of(refused) == "account_locked"
    assert "锁定" in text(refused)
    assert 'data-locked="1"' in text(admin.get(f"/admin/users/{person.sub}"))
    clock.advance(1801)
    _, allowed = user_login(app)
    assert allowed.status_code == 302


def test_an_unlocked_account_can_sign_in_again(app, admin, person):
    act(admin, person, "lock", minutes="600")
    assert act(admin, person, "unlock").status_code == 302
    _, response = user_login(app)
    assert response.status_code == 302
    assert handlers.locked_until(reload(person)) is None


def test_unlock_also_lifts_a_lockout_after_wrong_passwords(app, admin, person):
    for _ in range(5):
        user_login(app, password="Wr0ng!pass")
    assert reason_of(user_login(app)[1]) == "account_locked"
    act(admin, person, "unlock")
    assert user_login(app)[1].status_code == 302


@pytest.mark.parametrize("minutes", ["0", "-5", "43201", "abc", ""])
def test_a_lock_needs_a_sensible_duration(admin, person, minutes):
    response = act(admin, person, "lock", minutes=minutes)
    assert response.status_code == 400 and reason_of(response) == "invalid_minutes"
    assert handlers.locked_until(reload(person)) is None


def test_a_disabled_account_is_refused_at_login_and_can_be_enabled_again(app, admin, person):
    assert act(admin, person, "disable").status_code == 302
    assert reload(person).status == DISABLED
    _, refused = user_login(app)
    assert refused.status_code == 401 and reason_of(refused) == "account_disabled"
    assert act(admin, person, "enable").status_code == 302
    assert reload(person).status == ACTIVE
    assert user_login(app)[1].status_code == 302


def test_disabling_ends_the_users_sessions(app, admin, person):
    browser, _ = user_login(app)
    assert session_data(app, browser).get("account_id") == person.id
    act(admin, person, "disable")
    assert session_data(app, browser) == {}
    assert browser.get("/center/apps").status_code == 302


def test_enable_and_disable_are_refused_in_the_wrong_state(admin, person):
    response = act(admin, person, "enable")
    assert response.status_code == 400 and reason_of(response) == "not_disabled"
    act(admin, person, "disable")
    response = act(admin, person, "disable")
    assert response.status_code == 400 and reason_of(response) == "not_active"


def test_a_forced_password_change_sends_the_user_to_set_a_new_password(app, admin, person):
    assert act(admin, person, "force-password-change").status_code == 302
    assert reload(person).must_change_password
    _, response = user_login(app)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login/update-password"


def test_ending_all_sessions_signs_the_user_out_and_revokes_refresh_tokens(app, admin, person, clock):
    from idp.clients import ClientSpec, create

    client, secret = create(ClientSpec(name="项目申报", redirect_uris=["https://rp.example/callback"],
                                       scopes=["openid", "offline_access"], trusted=True,
                                       backchannel_logout_uri="https://rp.example/backchannel"))
    rp = relying_party(app, clock)
    tokens = rp.sign_in(client.client_id, secret, scope="openid offline_access")
    other_browser, _ = user_login(app)
    assert rp.session().get("account_id") == person.id

    response = act(admin, person, "end-sessions")
    assert response.status_code == 302

    assert rp.session() == {} and session_data(app, other_browser) == {}
    assert other_browser.get("/center/apps").status_code == 302
    refreshed = rp.refresh(client.client_id, secret, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    db.session.expire_all()
    assert all(row.revoked_at is not None for row in db.session.execute(db.select(RefreshToken)).scalars())
    jobs = db.session.execute(db.select(Job).filter_by(kind="backchannel_logout")).scalars().all()
    assert [job.payload["client_id"] for job in jobs] == [client.client_id]
    assert 'data-session=' not in text(admin.get(f"/admin/users/{person.sub}"))
    assert staff_actions("zhang_san")[-1]["sessions"] == 2


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_needs_the_confirmation(admin, person, action):
    response = act(admin, person, action, confirm=False, minutes="60")
    assert response.status_code == 400 and reason_of(response) == "confirmation_required"
    assert staff_actions("zhang_san") == []
    account = reload(person)
    assert account.status == ACTIVE and not account.must_change_password
    assert handlers.locked_until(account) is None


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_form_without_a_csrf_token_is_refused(admin, person, action):
    response = admin.post(f"/admin/users/{person.sub}/{action}", data={"confirm": "y", "minutes": "60"})
    assert response.status_code == 400 and reason_of(response) == "csrf_failed"
    assert staff_actions("zhang_san") == []
    account = reload(person)
    assert account.status == ACTIVE and not account.must_change_password
    assert handlers.locked_until(account) is None


def test_the_search_form_without_a_csrf_token_is_refused(admin, person):
    response = admin.post("/admin/users/", data={"kind": "login_name", "q": "zhang"})
    assert response.status_code == 400 and reason_of(response) == "csrf_failed"


def test_every_action_is_audited_as_a_staff_action_without_personal_data(admin, person, staff_member):
    act(admin, person, "lock", minutes="15")
    act(admin, person, "unlock")
    act(admin, person, "force-password-change")
    act(admin, person, "end-sessions")
    act(admin, person, "disable")
    act(admin, person, "enable")
    recorded = staff_actions("zhang_san")
    assert [r["action"] for r in recorded] == [
        "account_locked", "account_unlocked", "password_change_forced", "sessions_ended",
        "account_disabled", "account_enabled"]
    assert {r["actor"] for r in recorded} == {staff_member("superadmin").login}
    assert recorded[0]["minutes"] == 15
    for clear in ("13800138000", PERSON_DOCUMENT, "zhangsan@example.cn", "张三"):
        assert clear not in repr(recorded)


def test_the_actions_are_visible_in_the_audit_viewer(admin, person):
    act(admin, person, "force-password-change")
    page = text(admin.get("/admin/audit/?event=staff_action&subject=zhang_san"))
    assert "password_change_forced" in page


def test_every_reason_code_of_the_service_has_a_message():
    from idp.admin import user_service, users

    assert set(user_service.REASONS) <= set(users.MESSAGES)
