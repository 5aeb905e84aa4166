"""The review queue: registration review from the queue to the login page, claims, decisions,
filters, the case page, per-role access and CSRF on every form."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import cases, unit_of_work
from idp.extensions import db
from idp.models.accounts import ACTIVE, DISABLED, PENDING_REVIEW, Account
from idp.models.audit import AuditEvent
from idp.models.cases import APPROVED, PENDING, REGISTRATION, REJECTED, ReviewCase
from tests.admin.conftest import sign_in
from tests.conftest import csrf_token, login, make_account, reason_of


@pytest.fixture
def settings(settings):
    settings["REGISTRATION_REVIEW"] = True
    return settings


def case_of(account: Account) -> ReviewCase:
    return db.session.execute(select(ReviewCase).filter_by(account_id=account.id)).scalar_one()


def fresh(case: ReviewCase) -> ReviewCase:
    db.session.expire_all()
    return db.session.get(ReviewCase, case.id)


def post(client, path: str, **data):
    token = csrf_token(client, "/admin/cases/")
    return client.post(path, data={"csrf_token": token, **data})


def claim(client, case):
    return post(client, f"/admin/cases/{case.id}/claim")


def release(client, case):
    return post(client, f"/admin/cases/{case.id}/release")


def decide(client, case, decision: str, reason: str = ""):
    return post(client, f"/admin/cases/{case.id}/decide", decision=decision, reason=reason)


@pytest.fixture
def second_reviewer(app, clock, staff_member):
    """A test client signed in as a second reviewer, ``reviewer_2``."""
    staff = staff_member("reviewer", "reviewer_2")
    c = app.test_client()
    sign_in(app, c, clock, staff)
    return c


@pytest.fixture
def applicant():
    account = make_account(login_name="li_si_2026", document_type="resident_id",
                           identity_region="mainland", document_number="11010519491231002X",
                           phone="13800138000", email="lisi@example.cn")
    assert account.status == PENDING_REVIEW
    return account


def staff_events(action: str) -> list[AuditEvent]:
    events = db.session.execute(select(AuditEvent).where(AuditEvent.event.in_(("staff_action", "case_decided")))
                                .order_by(AuditEvent.id)).scalars()
    return [e for e in events if (e.details or {}).get("action") == action]


# --- the registration review path ------------------------------------------------------------


def test_a_registration_under_review_waits_as_a_pending_case_in_the_queue(app, console, applicant):
    case = case_of(applicant)
    assert case.case_type == REGISTRATION and case.state == PENDING and case.claimed_by is None
    page = console("reviewer").get("/admin/cases/").get_data(as_text=True)
    assert f'data-case="{case.id}" data-state="pending" data-type="registration"' in page
    assert "li_si_2026" in page


def test_an_approved_registration_activates_the_account_and_it_can_sign_in(
        app, client, console, second_reviewer, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    assert reason_of(login(app, client, "li_si_2026")) == "pending_review"

    assert claim(reviewer, case).status_code == 302
    assert fresh(case).claimed_by == "reviewer_1" and fresh(case).claimed_at is not None

    refused = claim(second_reviewer, case)
    assert refused.status_code == 409 and reason_of(refused) == "claimed_by_other"
    refused = decide(second_reviewer, case, "approve")
    assert refused.status_code == 409 and reason_of(refused) == "claimed_by_other"
    refused = release(second_reviewer, case)
    assert refused.status_code == 409 and reason_of(refused) == "claimed_by_other"
    assert fresh(case).state == PENDING and fresh(case).claimed_by == "reviewer_1"

    response = decide(reviewer, case, "approve", "Documents match.")
    assert response.status_code == 302
    case = fresh(case)
    assert case.state == APPROVED and case.reviewer == "reviewer_1" and case.reason == "Documents match."
    assert case.decided_at is not None
    assert db.session.get(Account, applicant.id).status == ACTIVE
    assert login(app, client, "li_si_2026").status_code == 302


def test_a_rejected_applicant_is_refused_at_login_and_the_reason_is_kept_for_them(
        app, client, console, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    assert decide(reviewer, case, "reject", "The document photo is unreadable.").status_code == 302
    case = fresh(case)
    assert case.state == REJECTED and case.reason == "The document photo is unreadable."
    account = db.session.get(Account, applicant.id)
    assert account.status == DISABLED
    assert cases.rejection_reason(account) == "The document photo is unreadable."
    response = login(app, client, "li_si_2026")
    assert response.status_code == 401 and reason_of(response) == "account_disabled"


def test_a_rejection_without_a_reason_is_refused_and_changes_nothing(app, console, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    for blank in ("", "   \n "):
        response = decide(reviewer, case, "reject", blank)
        assert response.status_code == 400 and reason_of(response) == "reason_required"
        assert 'id="reason-error"' in response.get_data(as_text=True)
    assert fresh(case).state == PENDING
    assert db.session.get(Account, applicant.id).status == PENDING_REVIEW


def test_a_reason_longer_than_the_limit_is_refused(app, console, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    response = decide(reviewer, case, "reject", "x" * (cases.MAX_REASON + 1))
    assert response.status_code == 400 and reason_of(response) == "reason_too_long"
    assert fresh(case).state == PENDING


def test_a_decided_case_cannot_be_decided_claimed_or_released_again(app, console, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    decide(reviewer, case, "approve")
    for response in (decide(reviewer, case, "reject", "Changed my mind."), decide(reviewer, case, "approve"),
                     claim(reviewer, case), release(reviewer, case)):
        assert response.status_code == 409 and reason_of(response) == "already_decided"
    case = fresh(case)
    assert case.state == APPROVED and case.reason is None
    assert db.session.get(Account, applicant.id).status == ACTIVE


def test_a_case_must_be_claimed_before_it_is_decided(app, console, applicant):
    response = decide(console("reviewer"), case_of(applicant), "approve")
    assert response.status_code == 409 and reason_of(response) == "not_claimed"
    assert fresh(case_of(applicant)).state == PENDING


def test_an_unknown_decision_is_a_bad_request(app, console, applicant):
    reviewer = console("reviewer")
    claim(reviewer, case_of(applicant))
    assert decide(reviewer, case_of(applicant), "maybe").status_code == 400
    assert fresh(case_of(applicant)).state == PENDING


def test_the_holder_releases_a_case_and_another_reviewer_can_then_claim_it(
        app, console, second_reviewer, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    assert release(reviewer, case).status_code == 302
    assert fresh(case).claimed_by is None and fresh(case).claimed_at is None
    assert claim(second_reviewer, case).status_code == 302
    assert fresh(case).claimed_by == "reviewer_2"


def test_the_case_page_shows_the_decision_form_only_to_the_holder(app, console, second_reviewer, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    page = reviewer.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert 'data-claim="free"' in page and "claim-form" in page and "decision-form" not in page
    claim(reviewer, case)
    page = reviewer.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert 'data-claim="mine"' in page and "decision-form" in page and "release-form" in page
    page = second_reviewer.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert 'data-claim="other"' in page and 'data-claimed-by="reviewer_1"' in page
    assert "decision-form" not in page and "claim-form" not in page


# --- claims: lapsing, activity, races -------------------------------------------------------------


def test_a_claim_lapses_after_thirty_idle_minutes_and_can_then_be_taken_over(app, clock, staff_member, applicant):
    first, second = staff_member("reviewer"), staff_member("reviewer", "reviewer_2")
    case = case_of(applicant)
    cases.claim(case, first)
    clock.advance(29 * 60)
    with pytest.raises(cases.CaseError) as refused:
        cases.claim(case, second)
    assert refused.value.reason == "claimed_by_other"
    clock.advance(2 * 60)
    assert cases.active_holder(case) is None
    cases.claim(case, second)
    assert case.claimed_by == "reviewer_2"
    with pytest.raises(cases.CaseError) as refused:
        cases.approve(case, first)
    assert refused.value.reason == "claimed_by_other"
    taken_over = staff_events("case_claimed")[-1]
    assert taken_over.details["taken_over_from"] == "reviewer_1"


def test_a_lapsed_claim_nobody_took_over_is_still_its_holders_to_decide(app, clock, staff_member, applicant):
    reviewer = staff_member("reviewer")
    case = case_of(applicant)
    cases.claim(case, reviewer)
    clock.advance(45 * 60)
    cases.approve(case, reviewer)
    assert case.state == APPROVED


def test_working_on_a_held_case_keeps_its_claim_alive(app, clock, staff_member, applicant):
    first, second = staff_member("reviewer"), staff_member("reviewer", "reviewer_2")
    case = case_of(applicant)
    cases.claim(case, first)
    clock.advance(20 * 60)
    cases.note_activity(case, first)
    clock.advance(20 * 60)
    with pytest.raises(cases.CaseError) as refused:
        cases.claim(case, second)
    assert refused.value.reason == "claimed_by_other"


def test_opening_the_case_page_counts_as_the_holders_activity(app, clock, console, staff_member, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    before = fresh(case).claimed_at
    clock.advance(10 * 60)
    reviewer.get(f"/admin/cases/{case.id}")
    assert fresh(case).claimed_at == before + timedelta(minutes=10)


def test_two_reviewers_claiming_at_once_leave_exactly_one_holder(app, staff_member, applicant):
    reviewers = [staff_member("reviewer"), staff_member("reviewer", "reviewer_2")]
    case_id, ids = case_of(applicant).id, [r.id for r in reviewers]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(staff_id: int) -> None:
        from idp.models.staff import StaffUser

        with app.app_context():
            staff = db.session.get(StaffUser, staff_id)
            case = db.session.get(ReviewCase, case_id)
            barrier.wait()
            try:
                with unit_of_work.unit():  # as the claim's request commits it
                    cases.claim(case, staff)
                outcomes.append("claimed")
            except cases.CaseError as error:
                outcomes.append(error.reason)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["claimed", "claimed_by_other"]
    assert fresh(case_of(applicant)).claimed_by in {"reviewer_1", "reviewer_2"}


def test_a_claim_against_a_stale_page_still_loses_to_the_current_holder(app, staff_member, applicant):
    """The claim is decided by the database row, not by what the reviewer's copy says."""
    first, second = staff_member("reviewer"), staff_member("reviewer", "reviewer_2")
    case = case_of(applicant)
    with db.engine.begin() as conn:  # another process claims it meanwhile
        conn.execute(ReviewCase.__table__.update().where(ReviewCase.id == case.id)
                     .values(claimed_by=first.login, claimed_at=cases._now()))
    assert case.claimed_by is None  # this copy has not seen it
    with pytest.raises(cases.CaseError) as refused:
        cases.claim(case, second)
    assert refused.value.reason == "claimed_by_other"


# --- every step is audited -----------------------------------------------------------------


def test_every_step_and_every_refusal_is_audited_as_a_staff_action(app, console, second_reviewer, applicant):
    reviewer = console("reviewer")
    case = case_of(applicant)
    claim(reviewer, case)
    claim(second_reviewer, case)
    release(reviewer, case)
    claim(reviewer, case)
    decide(reviewer, case, "reject", "Incomplete.")
    claimed = staff_events("case_claimed")
    assert [(e.actor, e.outcome) for e in claimed] == [
        ("reviewer_1", "success"), ("reviewer_2", "refused"), ("reviewer_1", "success")]
    assert claimed[1].details["reason"] == "claimed_by_other"
    assert [e.actor for e in staff_events("case_released")] == ["reviewer_1"]
    rejected = staff_events("case_rejected")
    assert len(rejected) == 1 and rejected[0].details["case_id"] == case.id
    assert rejected[0].subject == f"case:{case.id}" and rejected[0].details["account_id"] == applicant.id


# --- the queue: filters and counts ---------------------------------------------------------------


@pytest.fixture
def queue(app, staff_member):
    """Four registration cases: two pending (one held by reviewer_1), one approved, one rejected."""
    reviewer = staff_member("reviewer")
    made = {}
    for login_name in ("wang_wu", "zhao_liu", "sun_qi", "zhou_ba"):
        made[login_name] = case_of(make_account(login_name=login_name))
    cases.claim(made["zhao_liu"], reviewer)
    for name, decision in (("sun_qi", cases.approve), ("zhou_ba", cases.reject)):
        cases.claim(made[name], reviewer)
        decision(made[name], reviewer, "Checked.")
    made["unit"] = case_of(make_account("legal", login_name="fz_unit"))
    return made


def listed(client, **args) -> list[int]:
    page = client.get("/admin/cases/", query_string=args).get_data(as_text=True)
    return [int(n) for n in re.findall(r'<tr data-case="(\d+)"', page)]


def test_the_queue_lists_pending_cases_oldest_first_by_default(app, console, queue):
    assert listed(console("reviewer")) == [queue["wang_wu"].id, queue["zhao_liu"].id, queue["unit"].id]


def test_the_queue_filters_by_state(app, console, queue):
    reviewer = console("reviewer")
    assert listed(reviewer, state="approved") == [queue["sun_qi"].id]
    assert listed(reviewer, state="rejected") == [queue["zhou_ba"].id]
    assert len(listed(reviewer, state="all")) == 5


def test_the_queue_filters_by_who_holds_a_case(app, console, queue):
    reviewer = console("reviewer")
    assert listed(reviewer, claim="mine") == [queue["zhao_liu"].id]
    assert listed(reviewer, claim="unclaimed") == [queue["wang_wu"].id, queue["unit"].id]


def test_the_queue_finds_a_case_by_applicant_or_number(app, console, queue):
    reviewer = console("reviewer")
    assert listed(reviewer, q="WANG_W") == [queue["wang_wu"].id]
    assert listed(reviewer, q="福州示例", state="all") == [queue["unit"].id]
    assert listed(reviewer, q=f"#{queue['sun_qi'].id}", state="all") == [queue["sun_qi"].id]
    assert listed(reviewer, q="%") == []  # wildcards are ordinary characters


def test_the_queue_filters_by_case_type(app, console, queue, monkeypatch):
    monkeypatch.setitem(cases._registry, "appeal", cases.CaseType("appeal", "Appeal"))
    appeal = cases.open_case("appeal", data={"name": "赵六"})
    db.session.commit()
    reviewer = console("reviewer")
    assert listed(reviewer, type="appeal") == [appeal.id]
    assert appeal.id not in listed(reviewer, type="registration")
    assert listed(reviewer, type="no_such_type") == listed(reviewer)  # an unknown type is no filter


def test_the_queue_shows_counts_per_state_and_claim(app, console, queue):
    page = console("reviewer").get("/admin/cases/").get_data(as_text=True)
    figures = dict(re.findall(r'data-count="(\w+)"[^>]*><span class="stat-value">(\d+)<', page))
    assert figures == {"pending": "3", "unclaimed": "2", "mine": "1", "approved": "1", "rejected": "1"}


def test_hostile_filter_values_are_ignored_or_shown_escaped(app, console, queue):
    reviewer = console("reviewer")
    response = reviewer.get("/admin/cases/", query_string={
        "state": "'; drop table review_cases", "claim": "<x>", "page": "-3", "q": "<script>x</script>"})
    assert response.status_code == 200
    assert "<script>x</script>" not in response.get_data(as_text=True)
    assert reviewer.get("/admin/cases/", query_string={"page": "99999999999"}).status_code == 200


# --- the case page ---------------------------------------------------------------------


def test_the_case_page_shows_the_submitted_personal_data_masked(app, console, applicant):
    page = console("reviewer").get(f"/admin/cases/{case_of(applicant).id}").get_data(as_text=True)
    assert "110105********002X" in page and "11010519491231002X" not in page
    assert "138****8000" in page and "13800138000" not in page
    assert "l***@example.cn" in page and "lisi@example.cn" not in page
    assert "li_si_2026" in page and "张三" in page


def test_documents_named_in_the_case_data_are_listed_by_name(app, console, monkeypatch):
    monkeypatch.setitem(cases._registry, "appeal", cases.CaseType("appeal", "Appeal"))
    case = cases.open_case("appeal", data={
        "phone": "13912345678", "documents": ["id-front.jpg", {"name": "id-back.png", "size": 1000}]})
    db.session.commit()
    page = console("reviewer").get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert re.search(r'<ul class="case-documents"><li>id-front.jpg</li><li>id-back.png</li></ul>', page)
    assert "139****5678" in page and "13912345678" not in page


def test_a_case_without_documents_shows_no_document_list(app, console, applicant):
    page = console("reviewer").get(f"/admin/cases/{case_of(applicant).id}").get_data(as_text=True)
    assert "case-documents" not in page


def test_an_unknown_case_is_not_found(app, console):
    reviewer = console("reviewer")
    assert reviewer.get("/admin/cases/999999").status_code == 404
    assert claim(reviewer, ReviewCase(id=999999)).status_code == 404


# --- the framework: case types and their handlers ------------------------------------------------


def test_a_registered_case_type_has_its_handlers_called_with_the_decided_case(
        app, staff_member, monkeypatch):
    calls = []
    monkeypatch.setitem(cases._registry, "appeal", cases.CaseType(
        "appeal", "Appeal", on_approved=lambda c: calls.append(("approved", c.id, c.state, c.reviewer)),
        on_rejected=lambda c: calls.append(("rejected", c.id, c.state, c.reason))))
    reviewer = staff_member("reviewer")
    one, two = cases.open_case("appeal"), cases.open_case("appeal")
    db.session.commit()
    for case in (one, two):
        cases.claim(case, reviewer)
    cases.approve(one, reviewer)
    cases.reject(two, reviewer, "Not the same person.")
    assert calls == [("approved", one.id, APPROVED, "reviewer_1"), ("rejected", two.id, REJECTED, "Not the same person.")]


def test_a_failing_handler_leaves_the_case_pending(app, staff_member, monkeypatch):
    def broken(case):
        raise RuntimeError("the verification service is down")

    monkeypatch.setitem(cases._registry, "appeal", cases.CaseType("appeal", "Appeal", on_approved=broken))
    reviewer = staff_member("reviewer")
    case = cases.open_case("appeal")
    db.session.commit()
    with unit_of_work.unit():  # each as its request runs it: the failure's rolls back
        cases.claim(case, reviewer)
    with pytest.raises(RuntimeError), unit_of_work.unit():
        cases.approve(case, reviewer)
    assert fresh(case).state == PENDING and fresh(case).decided_at is None


def test_a_case_of_a_type_without_handlers_cannot_be_decided(app, staff_member):
    reviewer = staff_member("reviewer")
    case = cases.open_case("not_registered_yet")
    db.session.commit()
    cases.claim(case, reviewer)
    with pytest.raises(cases.CaseError) as refused:
        cases.approve(case, reviewer)
    assert refused.value.reason == "unknown_case_type"
    assert fresh(case).state == PENDING


def test_approving_a_registration_whose_account_was_disabled_meanwhile_keeps_it_disabled(
        app, staff_member, applicant):
    reviewer = staff_member("reviewer")
    case = case_of(applicant)
    applicant.status = DISABLED
    db.session.commit()
    cases.claim(case, reviewer)
    cases.approve(case, reviewer)
    assert db.session.get(Account, applicant.id).status == DISABLED


# --- who may do what ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["superadmin", "reviewer", "support"])
def test_roles_with_cases_view_open_the_queue_and_the_case_page(app, console, applicant, role):
    c = console(role)
    assert c.get("/admin/cases/").status_code == 200
    assert c.get(f"/admin/cases/{case_of(applicant).id}").status_code == 200
    assert 'href="/admin/cases/"' in c.get("/admin/").get_data(as_text=True)


def test_a_client_manager_cannot_open_or_change_the_queue(app, console, applicant):
    manager = console("client_manager")
    case = case_of(applicant)
    token = csrf_token(manager, "/admin/")
    assert manager.get("/admin/cases/").status_code == 403
    assert manager.get(f"/admin/cases/{case.id}").status_code == 403
    for action in ("claim", "release", "decide"):
        response = manager.post(f"/admin/cases/{case.id}/{action}", data={
            "csrf_token": token, "decision": "approve"})
        assert response.status_code == 403
    assert 'href="/admin/cases/"' not in manager.get("/admin/").get_data(as_text=True)
    assert fresh(case).state == PENDING and fresh(case).claimed_by is None


def test_support_sees_cases_read_only_and_every_change_is_forbidden(app, console, applicant):
    support = console("support")
    case = case_of(applicant)
    page = support.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert 'data-readonly="1"' in page
    assert "claim-form" not in page and "decision-form" not in page
    for action in ("claim", "release", "decide"):
        response = post(support, f"/admin/cases/{case.id}/{action}", decision="approve")
        assert response.status_code == 403
    assert fresh(case).state == PENDING and fresh(case).claimed_by is None


def test_a_superadmin_can_review_cases(app, console, applicant):
    admin = console("superadmin")
    case = case_of(applicant)
    claim(admin, case)
    assert decide(admin, case, "approve").status_code == 302
    assert fresh(case).reviewer == "superadmin_1"


def test_the_queue_needs_a_signed_in_staff_member(app, client, applicant):
    response = client.get("/admin/cases/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


# --- CSRF on every form ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["claim", "release", "decide"])
@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_every_case_form_refuses_a_request_without_its_csrf_token(app, console, applicant, action, token):
    reviewer = console("reviewer")
    case = case_of(applicant)
    if action != "claim":
        claim(reviewer, case)
    before = (fresh(case).state, fresh(case).claimed_by)
    data = {"decision": "reject", "reason": "Forged."}
    if token == "wrong":
        data["csrf_token"] = "forged-token"
    response = reviewer.post(f"/admin/cases/{case.id}/{action}", data=data)
    assert response.status_code == 400 and reason_of(response) == "csrf_failed"
    assert (fresh(case).state, fresh(case).claimed_by) == before


def test_a_new_case_type_brings_its_own_documents_and_only_the_holder_opens_them(
        app, console, monkeypatch):
    """The queue knows a case type's files only through its registration: an appeal type with a
    letter of its own is shown and served without the queue importing the appeal's area."""
    letters = {"letter": b"%PDF-1.4 appeal letter"}
    monkeypatch.setitem(cases._registry, "appeal", cases.CaseType("appeal", "Appeal", documents=cases.Documents(
        kinds=lambda case: [("letter", "Appeal letter")],
        fetch=lambda case, kind: (letters[kind], "application/pdf") if kind in letters else None)))
    case = cases.open_case("appeal", data={"name": "赵六"})
    db.session.commit()
    reviewer = console("reviewer")
    assert reviewer.get(f"/admin/cases/{case.id}/documents/letter").status_code == 403  # not held
    assert 'data-document="letter"' not in reviewer.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert claim(reviewer, case).status_code == 302
    assert 'data-document="letter"' in reviewer.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    response = reviewer.get(f"/admin/cases/{case.id}/documents/letter")
    assert response.status_code == 200 and response.data == letters["letter"]
    assert response.mimetype == "application/pdf" and response.headers["Cache-Control"] == "no-store"
    # A kind the type does not declare for this case is not fetched, even if the store has it.
    assert reviewer.get(f"/admin/cases/{case.id}/documents/id_front").status_code == 404
    viewed = [e.details["what"] for e in db.session.execute(
        select(AuditEvent).filter_by(event="personal_data_viewed")).scalars()]
    assert viewed == ["document:letter"]


def test_a_case_type_without_documents_serves_none(app, console, monkeypatch):
    monkeypatch.setitem(cases._registry, "appeal", cases.CaseType("appeal", "Appeal"))
    case = cases.open_case("appeal", data={"documents": [{"kind": "id_front", "key": "k"}]})
    db.session.commit()
    reviewer = console("reviewer")
    claim(reviewer, case)
    assert reviewer.get(f"/admin/cases/{case.id}/documents/id_front").status_code == 404
