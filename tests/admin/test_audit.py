"""The audit log in the console: who may read it, filters, newest first, the CSV export, and
that entries cannot be changed or deleted from the application."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from idp.admin.audit import AuditLogImmutable
from idp.extensions import db
from idp.models.audit import AuditEvent
from tests.conftest import login, make_account, reason_of

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


@pytest.fixture
def admin(console):
    return console("superadmin")


def text(response) -> str:
    return response.get_data(as_text=True)


def entry_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-entry="(\d+)"', text(response))]


def add(event="login_failed", outcome="failure", subject="zhang_san", actor=None, address="10.0.0.1",
        at: datetime | None = None, details=None) -> AuditEvent:
    row = AuditEvent(event=event, outcome=outcome, subject=subject, actor=actor, client_address=address,
                     details=details)
    if at is not None:
        row.time = at
    db.session.add(row)
    db.session.commit()
    return row


def beijing(*args) -> datetime:
    return datetime(*args, tzinfo=BEIJING).astimezone(timezone.utc)


def csv_rows(response) -> list[dict]:
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def exports() -> list[AuditEvent]:
    db.session.expire_all()
    return [e for e in db.session.execute(db.select(AuditEvent).filter_by(event="staff_action")).scalars()
            if (e.details or {}).get("action") == "audit_exported"]


# --- who may read it -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["superadmin", "support"])
def test_superadmin_and_support_can_read_and_export_the_log(console, role):
    c = console(role)
    assert c.get("/admin/audit/").status_code == 200
    assert c.get("/admin/audit/export.csv").status_code == 200
    assert 'href="/admin/audit/"' in text(c.get("/admin/"))


@pytest.mark.parametrize("role", ["reviewer", "client_manager"])
def test_reviewers_and_client_managers_get_403_on_the_log(console, role):
    c = console(role)
    assert c.get("/admin/audit/").status_code == 403
    assert c.get("/admin/audit/export.csv").status_code == 403
    assert 'href="/admin/audit/"' not in text(c.get("/admin/"))
    assert exports() == []


def test_a_visitor_who_is_not_signed_in_is_sent_to_the_console_sign_in(client):
    for path in ("/admin/audit/", "/admin/audit/export.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


# --- what it shows -------------------------------------------------------------------------


def test_sign_ins_appear_with_time_actor_subject_address_and_outcome(app, admin):
    make_account("natural", "zhang_san")
    login(app, app.test_client(), "zhang_san", "Wr0ng!pass", captcha="")
    login(app, app.test_client(), "zhang_san", captcha="")
    page = text(admin.get("/admin/audit/?subject=zhang_san"))
    failed = re.search(r'<tr data-entry="\d+" data-event="login_failed" data-outcome="failure">.*?</tr>', page, re.S)
    succeeded = re.search(r'<tr data-entry="\d+" data-event="login_succeeded" data-outcome="success">.*?</tr>',
                          page, re.S)
    assert failed and succeeded
    assert "127.0.0.1" in failed.group(0) and "zhang_san" in failed.group(0)
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00">', failed.group(0))
    assert page.index('data-event="login_succeeded"') < page.index('data-event="login_failed"')  # newest first


def test_entries_are_newest_first_fifty_to_a_page(admin, clock):
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    rows = [add(at=start + timedelta(minutes=n), details={"n": n}) for n in range(55)]
    first = admin.get("/admin/audit/?event=login_failed")
    assert entry_ids(first) == [r.id for r in reversed(rows)][:50]
    assert 'data-total="55"' in text(first) and 'rel="next"' in text(first)
    second = admin.get("/admin/audit/?event=login_failed&page=2")
    assert entry_ids(second) == [r.id for r in reversed(rows)][50:]


def test_entries_filter_by_event_outcome_subject_actor_and_address(admin):
    a = add("login_failed", "failure", "zhang_san", None, "10.0.0.1")
    b = add("login_succeeded", "success", "Zhang_San", None, "10.0.0.2")
    c = add("staff_action", "success", "li_si", "wang_admin", "10.0.0.3", details={"action": "account_locked"})
    assert entry_ids(admin.get("/admin/audit/?event=login_failed")) == [a.id]
    assert entry_ids(admin.get("/admin/audit/?outcome=success&subject=li_si")) == [c.id]
    assert entry_ids(admin.get("/admin/audit/?subject=ZHANG_SAN")) == [b.id, a.id]
    assert entry_ids(admin.get("/admin/audit/?actor=Wang_Admin")) == [c.id]
    assert entry_ids(admin.get("/admin/audit/?client_address=10.0.0.2")) == [b.id]
    assert entry_ids(admin.get("/admin/audit/?subject=zhang")) == []  # exact, not a part


def test_dates_are_calendar_days_in_beijing_time(admin):
    before = add(at=beijing(2026, 2, 28, 23, 59))
    early = add(at=beijing(2026, 3, 1, 0, 0))
    late = add(at=beijing(2026, 3, 1, 23, 59, 59))
    after = add(at=beijing(2026, 3, 2, 0, 0))
    days = "/admin/audit/?event=login_failed&"
    assert entry_ids(admin.get(days + "date_from=2026-03-01&date_to=2026-03-01")) == [late.id, early.id]
    assert entry_ids(admin.get(days + "date_from=2026-03-02&date_to=2026-03-02")) == [after.id]
    assert entry_ids(admin.get(days + "date_to=2026-02-28")) == [before.id]


@pytest.mark.parametrize("query, reason", [
    ("date_from=2026-13-01", "invalid_date"),
    ("date_to=yesterday", "invalid_date"),
    ("date_from=2026-03-02&date_to=2026-03-01", "date_range_reversed"),
    ("subject=" + "x" * 101, "filter_too_long"),
    ("outcome=maybe", "unknown_outcome"),
    ("actor=%E2%80%AEadmin", "invalid_characters"),
])
def test_bad_filters_get_a_clear_message(admin, query, reason):
    response = admin.get("/admin/audit/?" + query)
    assert response.status_code == 400 and reason_of(response) == reason
    assert admin.get("/admin/audit/export.csv?" + query).status_code == 400
    assert exports() == []


@pytest.mark.parametrize("value", ["%", "_", "' OR 1=1 --", "<script>alert(1)</script>"])
def test_hostile_filter_values_match_only_themselves_and_are_shown_escaped(admin, value):
    add(subject="zhang_san")
    own = add(subject=value)
    response = admin.get("/admin/audit/", query_string={"subject": value})
    assert response.status_code == 200
    assert entry_ids(response) == [own.id]
    assert "<script>alert(1)</script>" not in text(response)


# --- the export ----------------------------------------------------------------------------


def test_the_export_is_a_utf8_csv_attachment_of_the_filtered_rows(admin):
    old = add("login_failed", "failure", "张三_unit", None, "10.0.0.1", beijing(2026, 3, 1, 9, 30),
              details={"reason": "invalid_credentials", "备注": "中文"})
    new = add("login_failed", "failure", "li_si", None, "10.0.0.2", beijing(2026, 3, 1, 10, 0))
    add("login_succeeded", "success", "li_si", None, "10.0.0.2", beijing(2026, 3, 1, 10, 5))
    response = admin.get("/admin/audit/export.csv?event=login_failed")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="audit-\d{8}-\d{6}\.csv"', response.headers["Content-Disposition"])
    assert response.headers["Cache-Control"] == "no-store"
    rows = csv_rows(response)
    assert list(rows[0].keys()) == ["time", "event", "outcome", "actor", "subject", "client_address", "details"]
    assert [r["subject"] for r in rows] == ["li_si", "张三_unit"]  # newest first, filtered
    assert rows[1]["time"] == "2026-03-01T09:30:00+08:00"
    assert rows[1]["client_address"] == "10.0.0.1" and rows[1]["outcome"] == "failure" and rows[1]["actor"] == ""
    assert json.loads(rows[1]["details"]) == {"reason": "invalid_credentials", "备注": "中文"}
    assert "中文" in response.get_data().decode("utf-8")  # not \u escapes
    assert old.id != new.id


def test_the_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(admin):
    add(subject='=HYPERLINK("http://evil.example","x")')
    add(subject="+1+1")
    rows = csv_rows(admin.get("/admin/audit/export.csv?event=login_failed"))
    assert sorted(r["subject"] for r in rows) == ["'+1+1", "'=HYPERLINK(\"http://evil.example\",\"x\")"]


def test_the_export_is_itself_audited(admin, staff_member):
    make_account(login_name="zhang_san")  # a subject filter that names an account is recorded as typed
    add(subject="zhang_san")
    add(subject="li_si")
    admin.get("/admin/audit/export.csv?subject=zhang_san&date_from=2020-01-01")
    recorded = exports()
    assert len(recorded) == 1
    assert recorded[0].actor == staff_member("superadmin").login
    assert recorded[0].details == {"action": "audit_exported", "rows": 2,  # with account_registered
                                   "filters": {"subject": "zhang_san", "date_from": "2020-01-01"}}


def test_the_page_links_to_the_export_of_the_same_filters(admin):
    page = text(admin.get("/admin/audit/?event=login_failed&subject=zhang_san"))
    link = re.search(r'href="(/admin/audit/export\.csv[^"]*)"', page).group(1).replace("&amp;", "&")
    assert "event=login_failed" in link and "subject=zhang_san" in link


# --- entries cannot be changed -------------------------------------------------------------


def test_the_console_has_no_route_that_changes_the_log(app, admin):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin_audit.")]
    assert rules and all(r.methods <= {"GET", "HEAD", "OPTIONS"} for r in rules)
    row = add()
    for method in ("post", "put", "patch", "delete"):
        for path in ("/admin/audit/", f"/admin/audit/{row.id}", "/admin/audit/export.csv"):
            assert getattr(admin, method)(path).status_code in (404, 405), (method, path)


def _stored(row_id: int):
    return db.session.execute(
        sa.select(AuditEvent.__table__.c.outcome, AuditEvent.__table__.c.subject)
        .where(AuditEvent.__table__.c.id == row_id)).one_or_none()


def test_changing_an_entry_through_the_orm_raises_and_leaves_it_unchanged(app):
    row = add(outcome="failure", subject="zhang_san")
    row.outcome = "success"
    with pytest.raises(AuditLogImmutable):
        db.session.commit()
    db.session.rollback()
    assert tuple(_stored(row.id)) == ("failure", "zhang_san")


def test_deleting_an_entry_through_the_orm_raises_and_keeps_it(app):
    row = add()
    db.session.delete(row)
    with pytest.raises(AuditLogImmutable):
        db.session.commit()
    db.session.rollback()
    assert _stored(row.id) is not None


def test_bulk_orm_updates_and_deletes_of_entries_raise(app):
    row = add(outcome="failure")
    with pytest.raises(AuditLogImmutable):
        db.session.execute(sa.update(AuditEvent).values(outcome="success"))
    db.session.rollback()
    with pytest.raises(AuditLogImmutable):
        db.session.query(AuditEvent).filter_by(id=row.id).delete()
    db.session.rollback()
    with pytest.raises(AuditLogImmutable):
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.id == row.id))
    db.session.rollback()
    assert tuple(_stored(row.id)) == ("failure", "zhang_san")


def test_new_entries_can_still_be_written_and_core_statements_still_empty_the_table(app):
    add()
    add()
    db.session.execute(AuditEvent.__table__.delete())  # how the test suite resets the database
    db.session.commit()
    assert db.session.execute(sa.select(sa.func.count()).select_from(AuditEvent.__table__)).scalar_one() == 0


def test_every_reason_code_of_the_filters_has_a_message():
    from idp.admin import audit

    assert set(audit.REASONS) == set(audit.MESSAGES)


# --- typed login names that match no account (people type ID numbers and phones there) --------

ID_NUMBER = "11010519491231002X"


def test_an_id_number_typed_as_a_login_name_reaches_the_log_and_its_export_only_as_a_keyed_hash(app, admin):
    from idp.audit import unknown_name

    make_account(login_name="zhang_san")
    citizen = app.test_client()
    for typed in (ID_NUMBER, ID_NUMBER.lower(), f" {ID_NUMBER} "):
        assert login(app, citizen, typed, "Wrong-pass-1", captcha="").status_code == 401
    assert login(app, citizen, "zhang_san", "Wrong-pass-1", captcha="").status_code == 401

    hashed = unknown_name(ID_NUMBER.lower())
    failed = [e.subject for e in db.session.execute(
        db.select(AuditEvent).filter_by(event="login_failed").order_by(AuditEvent.id)).scalars()]
    assert failed == [hashed, hashed, hashed, "zhang_san"]

    export = admin.get("/admin/audit/export.csv")
    body = export.get_data(as_text=True)
    assert ID_NUMBER not in body and ID_NUMBER.lower() not in body and "19491231" not in body
    assert [r["subject"] for r in csv_rows(export) if r["event"] == "login_failed"] == ["zhang_san"] + [hashed] * 3

    # Staff find the attempts by typing the number; the export's own event records the hash.
    found = csv_rows(admin.get(f"/admin/audit/export.csv?subject={ID_NUMBER}"))
    assert [r["subject"] for r in found] == [hashed] * 3
    assert exports()[-1].details["filters"] == {"subject": hashed}
    assert ID_NUMBER not in json.dumps([e.details for e in exports()])


def test_an_unknown_name_typed_at_the_staff_sign_in_is_logged_as_its_keyed_hash(app, client):
    from idp.audit import unknown_name
    from tests.admin.conftest import password_step

    assert password_step(app, client, ID_NUMBER, "Wrong-pass-1").status_code == 401
    events = list(db.session.execute(db.select(AuditEvent).filter_by(event="staff_login_failed")).scalars())
    assert [e.subject for e in events] == [unknown_name(ID_NUMBER.lower())]
    assert all(ID_NUMBER.lower() not in json.dumps([e.subject, e.actor, e.details]).lower()
               for e in db.session.execute(db.select(AuditEvent)).scalars())
