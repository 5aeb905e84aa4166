"""Issue 12, item 6: the verified status follows the data.

A verified account whose identity data change is unverified in the same transaction, whatever
the verifier answers and whether it answers at all (here: the national interface is a real
local HTTP server answering 503, or a closed port); ``verified_claims`` and
``verification_status`` never disagree with the data; the evidence names what was checked.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from idp import clients as registry
from idp.clients import ClientSpec
from idp.extensions import db, services
from idp.models.accounts import Account
from idp.oauth.claims import user_claims
from idp.services.verifier import LocalVerifier
from idp.verification import service
from tests.conftest import audit_events, csrf_token, login, make_account
from tests.oidc.conftest import REDIRECT_URI, relying_party

ID_1 = "11010519491231002X"
ID_2 = "110105194912310037"
USCC_1 = "91350100M000100Y43"
USCC_2 = "91110000600037341L"


@pytest.fixture
def national():
    """The national interface, down: every request is answered 503."""
    state = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state["requests"] += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{httpd.server_port}/verify"
    yield state
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/verify"  # nothing listens there any more


@pytest.fixture(params=["503", "closed_port"])
def settings(request, settings, national):
    settings.update(CAPTCHA="off", VERIFIER="http", VERIFIER_SECRET="national-secret", VERIFIER_TIMEOUT=0.5,
                    VERIFIER_RETRIES=0,
                    VERIFIER_URL=national["url"] if request.param == "503" else closed_port_url())
    return settings


def verified(account: Account) -> Account:
    """Verified by an earlier automatic check (the local verifier stands in for that day)."""
    configured = services().verifier
    services().verifier = LocalVerifier()
    try:
        assert service.save_profile(account, {}).outcome == "matched"
    finally:
        services().verifier = configured
    db.session.commit()  # the service only flushes: that earlier day's unit of work ends here
    assert account.verification_status == "verified_auto" and user_claims(account, "openid verification").get(
        "verified_claims")
    return account


def reload(account_id: int) -> Account:
    db.session.expire_all()
    return db.session.get(Account, account_id)


def assert_unverified_everywhere(account: Account) -> None:
    assert account.verification_status == "unverified"
    assert account.verified_data is None and account.verified_at is None and account.verification_method is None
    info = user_claims(account, "openid verification")
    assert info["verification_status"] == "unverified" and "verified_claims" not in info


def person() -> Account:
    return make_account("natural", "zhang_san", document_type="resident_id", identity_region="mainland",
                        document_number=ID_1)


def unit() -> Account:
    return make_account("legal", "fz_unit", uscc=USCC_1, org_name="福州示例有限公司", org_kind="enterprise",
                        org_region="domestic", legal_rep_name="王五", legal_rep_document_type="resident_id",
                        legal_rep_document_number=ID_1)


# --- while the verifier is down ----------------------------------------------------------------


def test_a_name_changed_in_the_user_centre_while_the_verifier_is_down_is_saved_unverified(app, client, clock,
                                                                                          national):
    account = verified(person())
    client_row, secret = registry.create(ClientSpec(name="高企认定", redirect_uris=[REDIRECT_URI], trusted=True,
                                                    scopes=["openid", "profile", "verification"]))
    rp = relying_party(app, clock)
    tokens = rp.sign_in(client_row.client_id, secret, scope="openid profile verification")
    before = rp.userinfo(tokens["access_token"]).get_json()
    assert before["verification_status"] == "verified_auto" and before["verified_claims"]["claims"]["name"] == "张三"

    assert login(app, client, "zhang_san", captcha="").status_code == 302
    response = client.post("/center/profile/edit", data={
        "csrf_token": csrf_token(client, "/center/profile/edit"), "name": "李四", "identity_region": "mainland",
        "document_type": "resident_id", "document_number": "", "birth_date": "", "email": "", "address": "",
        "landline": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    account = reload(account.id)
    assert account.name == "李四"  # the change is saved
    assert_unverified_everywhere(account)
    after = rp.userinfo(tokens["access_token"]).get_json()  # the token issued before the change
    assert after["verification_status"] == "unverified" and "verified_claims" not in after
    assert after["name"] == "李四"
    (voided,) = [e for e in audit_events("verification_voided")]
    assert voided.subject == "zhang_san"
    assert voided.details == {"why": "identity_data_changed", "status_before": "verified_auto", "fields": ["name"]}
    assert audit_events("verification_checked")[-1].details["result"] == "unavailable"


@pytest.mark.parametrize("changes", [
    {"name": "张叁"},
    {"document_number": ID_2},
    {"birth_date": "1950-01-01", "document_type": "passport", "identity_region": "other",
     "document_number": "E12345678"},
    {"identity_region": "hmt", "document_type": "passport", "document_number": "E12345678"},
    {"identity_region": "other", "document_type": "other", "document_number": "X-1"},
], ids=["name", "document_number", "birth_date", "identity_region", "document_type"])
def test_each_identity_field_of_a_person_unverifies_while_the_verifier_is_down(app, changes):
    account = verified(person())
    result = service.save_profile(account, dict(changes))
    assert result.outcome == "unavailable" and set(changes) <= {*result.changed, "birth_date"}
    account = reload(account.id)
    assert all(getattr(account, k) == v for k, v in changes.items())
    assert_unverified_everywhere(account)


@pytest.mark.parametrize("changes", [
    {"org_name": "福州另一家有限公司"},
    {"uscc": USCC_2},
    {"org_kind": "social_org"},
    {"org_region": "hmt"},
    {"legal_rep_name": "钱七"},
    {"legal_rep_document_type": "passport", "legal_rep_document_number": "E12345678"},
    {"legal_rep_document_number": ID_2},
], ids=lambda c: "+".join(c))
def test_each_identity_field_of_a_unit_unverifies_while_the_verifier_is_down(app, changes):
    account = verified(unit())
    service.save_profile(account, dict(changes))
    account = reload(account.id)
    assert all(getattr(account, k) == v for k, v in changes.items())
    assert_unverified_everywhere(account)
    assert "org" in user_claims(account, "openid org")  # the unit's data are still there, unverified


def test_a_change_outside_the_identity_keeps_the_verification(app):
    account = verified(unit())
    assert service.save_profile(account, {"email": "new@example.cn", "name": "赵六"}).outcome == "unchanged"
    account = reload(account.id)
    assert account.verification_status == "verified_auto" and account.verified_data


# --- whatever writes the data ---------------------------------------------------------------


def test_any_write_path_unverifies_in_the_same_commit_and_a_rollback_keeps_everything(app):
    """The console, the CLI or an import write the row directly: the rule holds there too."""
    account = verified(person())
    account.name = "王二"
    db.session.rollback()
    account = reload(account.id)
    assert account.name == "张三" and account.verification_status == "verified_auto"
    assert audit_events("verification_voided") == []

    account.document_number = ID_2
    db.session.commit()
    account = reload(account.id)
    assert_unverified_everywhere(account)
    assert [e.details["fields"] for e in audit_events("verification_voided")] == [["document_number"]]


def test_a_manually_verified_account_is_unverified_by_an_identity_change(app, staff_member):
    from idp import cases
    from tests.verification.test_verification import docs

    account = unit()
    case = service.submit_documents(account, docs(account))
    reviewer = staff_member("reviewer")
    cases.claim(case, reviewer)
    cases.approve(case, reviewer)
    account = reload(account.id)
    assert account.verification_status == "verified_manual"
    service.save_profile(account, {"uscc": USCC_2})
    assert_unverified_everywhere(reload(account.id))


def test_a_pending_review_is_voided_by_an_identity_change_while_the_verifier_is_down(app):
    from idp.models.cases import ReviewCase
    from tests.verification.test_verification import docs

    account = unit()
    case = service.submit_documents(account, docs(account))
    result = service.save_profile(account, {"org_name": "福州另一家有限公司"})
    assert result.voided and result.outcome == "unavailable"
    db.session.expire_all()
    assert db.session.get(ReviewCase, case.id).state == "voided"
    assert_unverified_everywhere(reload(account.id))
