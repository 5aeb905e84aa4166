"""Issue 12, item 6: ``verified_claims`` names what was actually checked. The local development
verifier tests check digits (or a file of test data): its match is never presented as a check
against the population or unit register of the national platform."""

from __future__ import annotations

import json

import pytest

from idp.extensions import services
from idp.oauth.claims import user_claims
from idp.services.verifier import LocalVerifier
from idp.verification import service
from tests.conftest import login, make_account

ID_1 = "11010519491231002X"
USCC_1 = "91350100M000100Y43"


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


def person():
    return make_account("natural", "zhang_san", document_type="resident_id", identity_region="mainland",
                        document_number=ID_1)


def unit():
    return make_account("legal", "fz_unit", uscc=USCC_1, org_name="福州示例有限公司", org_region="domestic")


@pytest.mark.parametrize("make", [person, unit], ids=["natural", "legal"])
def test_a_check_digit_match_of_the_local_verifier_is_named_as_such(app, make):
    services().verifier = LocalVerifier()  # the development default: check digits only
    account = make()
    assert service.save_profile(account, {}).outcome == "matched"
    assert account.verification_method == "local_check_digits"
    vc = user_claims(account, "openid verification")["verified_claims"]
    verification = vc["verification"]
    assert verification["trust_framework"] == "cn_most_platform"
    assert verification["verification_process"] == "local_check_digits"
    (evidence,) = verification["evidence"]
    assert evidence["type"] == "electronic_record" and "record" not in evidence  # no register consulted
    (check,) = evidence["check_details"]
    assert check["check_method"] == "check_digits" and check["organization"] == "local_verifier"
    assert check["txn"].startswith("local-")
    text = json.dumps(vc)
    assert "register" not in text and "national" not in text


def test_a_registry_file_match_is_named_as_the_local_registry(app, tmp_path):
    registry = tmp_path / "registry.csv"
    registry.write_text("kind,name,document_type,document_number\nnatural,张三,resident_id,%s\n" % ID_1,
                        encoding="utf-8")
    services().verifier = LocalVerifier(registry)
    account = person()
    service.save_profile(account, {})
    verification = user_claims(account, "openid verification")["verified_claims"]["verification"]
    assert account.verification_method == "local_registry"
    assert verification["verification_process"] == "local_registry"
    (evidence,) = verification["evidence"]
    assert evidence["record"] == {"type": "local_registry_file"}
    assert evidence["check_details"][0]["organization"] == "local_verifier"


def test_the_user_centre_does_not_call_a_local_match_a_national_platform_verification(app, client):
    services().verifier = LocalVerifier()
    account = person()
    service.save_profile(account, {})
    assert login(app, client, "zhang_san", captcha="").status_code == 302
    page = client.get("/center/profile").get_data(as_text=True)
    assert 'data-status="verified_auto"' in page
    assert "本地开发校验" in page and "国家平台实名认证通过" not in page
