"""Real-name verification: every status transition of both account types, the documents,
the review, the claims and require_verified."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from idp import cases, unit_of_work
from idp.accounts.service import FieldError
from idp.extensions import db, services
from idp.models.cases import ReviewCase
from idp.services.verifier import VerifierUnavailable, Verdict
from idp.verification import service
from idp.verification.images import DocumentRejected, clean_image
from tests.conftest import audit_events, csrf_token, login, make_account

ID_1 = "11010519491231002X"
ID_2 = "110105194912310037"
USCC_1 = "91350100M000100Y43"


def png(size=(40, 30), **info) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, "PNG", **info)
    return out.getvalue()


def jpeg(size=(40, 30), exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    Image.new("RGB", size, (10, 200, 10)).save(out, "JPEG", **kwargs)
    return out.getvalue()


class FakeVerifier:
    """Stands in for the national interface (an answer of the local verifier is named otherwise)."""

    method = "national_platform"

    def __init__(self, result="match"):
        self.result = result
        self.calls = []

    def _answer(self):
        if self.result == "down":
            raise VerifierUnavailable("down")
        return Verdict(self.result, "ref-1")

    def verify_person(self, *args):
        self.calls.append(args)
        return self._answer()

    def verify_unit(self, *args):
        self.calls.append(args)
        return self._answer()


@pytest.fixture
def verifier(app):
    fake = FakeVerifier()
    services().verifier = fake
    return fake


def person(**profile):
    profile.setdefault("document_type", "resident_id")
    profile.setdefault("identity_region", "mainland")
    return make_account("natural", profile.pop("login_name", "zhang_san"), **profile)


def unit(**profile):
    return make_account("legal", profile.pop("login_name", "unit_one"), **profile)


def docs(account):
    kinds = service.DOCUMENT_KINDS[account.account_type]
    return {kind: (f"{kind}.png", png()) for kind in kinds}


def reviewer(staff_member):
    return staff_member("reviewer")


# --- automatic path -----------------------------------------------------------------------


@pytest.mark.parametrize("make, fields", [
    (lambda: person(), {"document_number": ID_1, "name": "张三"}),
    (lambda: unit(), {"org_name": "福州示例二有限公司", "uscc": USCC_1}),
])
def test_save_unverified_to_verified_auto_and_mismatch_keeps_unverified(app, verifier, make, fields):
    account = make()
    verifier.result = "mismatch"
    result = service.save_profile(account, dict(fields))
    assert result.outcome == "not_matched" and account.verification_status == "unverified"
    verifier.result = "match"
    result = service.save_profile(account, {})
    assert result.outcome == "matched" and account.verification_status == "verified_auto"
    assert account.verification_method == "national_platform" and account.verified_at is not None
    assert audit_events("verification_checked")[-1].details["status"] == "verified_auto"


def test_verifier_unavailable_saves_the_data_and_a_verified_account_is_unverified(app, verifier):
    account = person()
    verifier.result = "down"
    result = service.save_profile(account, {"document_number": ID_1})
    assert result.outcome == "unavailable"
    assert account.verification_status == "unverified" and account.document_number == ID_1
    verifier.result = "match"
    service.save_profile(account, {})
    verifier.result = "down"
    result = service.save_profile(account, {"name": "张叁"})
    assert result.outcome == "unavailable" and account.name == "张叁"
    assert account.verification_status == "unverified" and account.verified_data is None  # issue 12


def test_verified_then_identity_change_mismatch_becomes_unverified(app, verifier):
    account = person(document_number=ID_1)
    service.save_profile(account, {})
    assert account.verification_status == "verified_auto"
    verifier.result = "mismatch"
    service.save_profile(account, {"name": "李四"})
    assert account.verification_status == "unverified" and account.verified_data is None


def test_saving_a_verified_account_without_identity_change_asks_nothing(app, verifier):
    account = person(document_number=ID_1)
    service.save_profile(account, {})
    calls = len(verifier.calls)
    assert service.save_profile(account, {"job_title": "工程师"}).outcome == "unchanged"
    assert len(verifier.calls) == calls


# --- manual path and review --------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: person(document_number=ID_1), lambda: unit()])
def test_pending_approved_rejected_and_resubmitted(app, verifier, staff_member, make):
    verifier.result = "mismatch"
    account = make()
    case = service.submit_documents(account, docs(account))
    assert account.verification_status == "pending"
    staff = reviewer(staff_member)
    cases.claim(case, staff)
    with unit_of_work.unit():  # the decision is a unit of work: its SMS goes once it is committed
        cases.reject(case, staff, "照片模糊")
    db.session.refresh(account)
    assert account.verification_status == "rejected" and account.verification_reason == "照片模糊"
    decided = audit_events("case_decided")[-1]
    assert decided.details["decision"] == "rejected"
    outbox = Path(app.config["INSTANCE_DIR"]) / "sms-outbox.jsonl"
    last = json.loads(outbox.read_text().splitlines()[-1])
    assert last["template"] == "verification_rejected" and "照片模糊" in last["text"]
    # rejected → pending → verified_manual
    case = service.submit_documents(account, docs(account))
    cases.claim(case, staff)
    with unit_of_work.unit():
        cases.approve(case, staff)
    db.session.refresh(account)
    assert account.verification_status == "verified_manual"
    assert account.verification_method == "document_review"
    assert json.loads(outbox.read_text().splitlines()[-1])["template"] == "verification_approved"
    with pytest.raises(service.VerificationError) as refused:
        service.submit_documents(account, docs(account))
    assert refused.value.reason == "already_verified"


def test_identity_change_while_pending_voids_the_case_and_deletes_documents(app, verifier):
    verifier.result = "mismatch"
    account = person(document_number=ID_1)
    case = service.submit_documents(account, docs(account))
    keys = [d["key"] for d in case.data["documents"]]
    result = service.save_profile(account, {"name": "张叁"})
    assert result.voided and account.verification_status == "unverified"
    assert all(services().documents.get(key) for key in keys)  # kept until the unit commits
    db.session.commit()  # the save's request ends
    db.session.refresh(case)
    assert case.state == "voided"
    for key in keys:
        with pytest.raises(KeyError):
            services().documents.get(key)


def test_documents_are_stored_encrypted_and_re_encoded(app, verifier):
    verifier.result = "mismatch"
    account = person(document_number=ID_1)
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    photo = jpeg(exif=exif.tobytes())
    case = service.submit_documents(account, {"id_front": ("a.jpg", photo), "id_back": ("b.png", png())})
    key = case.data["documents"][0]["key"]
    root = Path(app.config["INSTANCE_DIR"]) / "uploads" / "documents"
    raw = (root / key[:2] / f"{key}.bin").read_bytes()
    assert b"JFIF" not in raw and b"SecretCameraMaker" not in raw
    clear = services().documents.get(key)
    assert clear.startswith(b"\xff\xd8") and b"SecretCameraMaker" not in clear


@pytest.mark.parametrize("data, name, reason", [
    (b"\xff" * (1024 * 1024 + 1), "a.jpg", "document_too_large"),
    (b"<html><body>hi</body></html>", "a.jpg", "document_not_an_image"),
    (b"%PDF-1.4\n1 0 obj<<>>endobj\n", "a.jpg", "document_not_an_image"),
    (png(size=(400, 400))[:200], "a.png", "document_damaged"),
    (b"", "a.png", "document_missing"),
    (png(), "a.gif", "document_bad_extension"),
])
def test_bad_files_are_refused_with_a_reason(data, name, reason):
    with pytest.raises(DocumentRejected) as refused:
        clean_image(data, name)
    assert refused.value.reason == reason


def test_a_decompression_bomb_is_refused():
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, "PNG")
    assert len(out.getvalue()) < 1024 * 1024
    with pytest.raises(DocumentRejected) as refused:
        clean_image(out.getvalue(), "bomb.png")
    assert refused.value.reason in ("document_too_many_pixels", "document_not_an_image")


def test_a_png_named_jpg_is_accepted_as_png():
    data, content_type = clean_image(png(), "photo.jpg")
    assert content_type == "image/png" and data.startswith(b"\x89PNG")


def test_a_truncated_jpeg_is_refused():
    data = jpeg(size=(300, 300))
    with pytest.raises(DocumentRejected):
        clean_image(data[: len(data) // 2], "a.jpg")


def test_one_bad_file_stores_nothing_and_opens_no_case(app, verifier):
    account = person(document_number=ID_1)
    with pytest.raises(service.DocumentError) as refused:
        service.submit_documents(account, {"id_front": ("a.png", png()), "id_back": ("b.jpg", b"<html>")})
    assert refused.value.field == "id_back"
    assert db.session.execute(db.select(ReviewCase)).first() is None
    assert account.verification_status == "unverified"


def test_twenty_uploads_in_a_minute_are_throttled(app, verifier):
    account = person(document_number=ID_1)
    reasons = []
    for _ in range(20):
        try:
            service.submit_documents(account, {"id_front": ("a.png", b"x"), "id_back": ("b.png", b"x")})
        except service.DocumentError:
            reasons.append("bad")
        except service.VerificationError as error:
            reasons.append(error.reason)
    assert reasons.count("too_many_uploads") == 20 - app.config["UPLOAD_MAX_PER_MINUTE"]


def test_a_document_verified_on_another_account_opens_a_case_and_changes_nothing(app, verifier):
    first = person(login_name="first_one", document_number=ID_1, phone="13800138001")
    service.save_profile(first, {})
    assert first.verification_status == "verified_auto"
    second = person(login_name="second_one", name="李四", document_number=ID_2, phone="13800138002")
    with pytest.raises(FieldError) as refused:
        service.save_profile(second, {"document_number": ID_1, "name": "张三"})
    assert refused.value.reason == "identity_verified_elsewhere"
    db.session.refresh(second)
    assert second.document_number == ID_2 and second.name == "李四"
    conflict = db.session.execute(db.select(ReviewCase).filter_by(case_type="identity_conflict")).scalar_one()
    assert conflict.account_id == second.id and conflict.data["other_account_id"] == first.id


# --- pages ---------------------------------------------------------------------------------


def test_upload_page_submit_opens_a_case_and_the_profile_shows_pending(app, client, verifier):
    verifier.result = "mismatch"
    account = person(document_number=ID_1)
    login(app, client, "zhang_san")
    page = client.get("/center/profile/documents")
    assert page.status_code == 200 and 'name="id_front"' in page.get_data(as_text=True)
    token = csrf_token(client, "/center/profile/documents")
    response = client.post("/center/profile/documents", data={
        "csrf_token": token, "id_front": (io.BytesIO(png()), "front.jpg"),
        "id_back": (io.BytesIO(b"\xff" * (1024 * 1024 + 1)), "back.jpg")},
        content_type="multipart/form-data")
    assert response.status_code == 400 and 'data-reason="id_back"' in response.get_data(as_text=True)
    response = client.post("/center/profile/documents", data={
        "csrf_token": token, "id_front": (io.BytesIO(png()), "front.jpg"),
        "id_back": (io.BytesIO(jpeg()), "back.jpeg")}, content_type="multipart/form-data")
    assert response.status_code == 302
    profile = client.get("/center/profile").get_data(as_text=True)
    assert 'data-status="pending"' in profile
    db.session.refresh(account)
    assert account.verification_status == "pending"


def test_reviewer_sees_clear_data_and_documents_only_in_a_held_case(app, verifier, console, staff_member):
    verifier.result = "mismatch"
    account = person(document_number=ID_1)
    case = service.submit_documents(account, docs(account))
    c = console("reviewer")
    page = c.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert ID_1 not in page
    assert c.get(f"/admin/cases/{case.id}/documents/id_front").status_code == 403
    cases.claim(case, staff_member("reviewer"))
    page = c.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert ID_1 in page
    response = c.get(f"/admin/cases/{case.id}/documents/id_front")
    assert response.status_code == 200 and response.data.startswith(b"\x89PNG")
    assert response.headers["Cache-Control"] == "no-store"
    viewed = [e.details["what"] for e in audit_events("personal_data_viewed")]
    assert viewed == ["case_data", "document:id_front"]


# --- claims --------------------------------------------------------------------------------


def test_verified_claims_for_auto_and_manual(app, verifier, staff_member):
    from idp.oauth.claims import user_claims

    account = person(document_number=ID_1)
    assert "verified_claims" not in user_claims(account, "openid verification")
    service.save_profile(account, {})
    info = user_claims(account, "openid verification")
    assert info["verification_status"] == "verified_auto"
    vc = info["verified_claims"]
    assert vc["verification"]["trust_framework"] == "cn_most_platform"
    assert vc["verification"]["evidence"][0]["type"] == "electronic_record"
    assert vc["claims"] == {"name": "张三", "birthdate": "1949-12-31"}

    verifier.result = "mismatch"
    org = unit()
    case = service.submit_documents(org, docs(org))
    staff = reviewer(staff_member)
    cases.claim(case, staff)
    cases.approve(case, staff)
    db.session.refresh(org)
    vc = user_claims(org, "openid verification")["verified_claims"]
    assert vc["verification"]["evidence"][0]["type"] == "document"
    assert vc["claims"] == {"org": {"name": "福州示例有限公司", "uscc": USCC_1}}
