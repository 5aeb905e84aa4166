"""Every service refusal is one ``Refused`` with a stable reason code, whatever its area calls it."""

from __future__ import annotations

import re

import pytest

from idp.accounts.service import FieldError
from idp.admin.audit import AuditFilterError
from idp.admin.staff import StaffError
from idp.admin.user_service import UserServiceError
from idp.cases import CaseError
from idp.clients import ClientError
from idp.errors import Refused
from idp.security.outbound import OutboundRefused
from idp.security.passwords import UnsupportedHash
from idp.verification.images import DocumentRejected
from idp.verification.service import DocumentError, VerificationError

AREAS = [
    (FieldError("login_name", "login_name_taken"), "login_name"),
    (ClientError("redirect_uris", "redirect_uri_not_https"), "redirect_uris"),
    (DocumentError("id_front", "document_too_large"), "id_front"),
    (CaseError("claimed_by_other"), None),
    (StaffError("account_locked"), None),
    (UserServiceError("query_empty"), None),
    (AuditFilterError("invalid_date"), None),
    (VerificationError("too_many_uploads", retry_after=60), None),
    (DocumentRejected("document_damaged"), None),
    (OutboundRefused("loopback", "127.0.0.1"), None),
    (UnsupportedHash("hash_format_unknown"), None),
]


@pytest.mark.parametrize("error, field", AREAS, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_each_area_refuses_with_one_base_that_carries_a_snake_case_reason(error, field):
    assert isinstance(error, Refused)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error.reason)
    assert error.field == field
    with pytest.raises(Refused):
        raise error


def test_a_refusal_reads_as_field_and_reason_for_an_operator():
    assert str(FieldError("login_name", "login_name_taken")) == "login_name: login_name_taken"
    assert str(CaseError("not_claimed")) == "not_claimed"
    assert str(OutboundRefused("loopback", "127.0.0.1")) == "loopback: 127.0.0.1"


def test_areas_that_refused_with_a_value_error_still_do():
    for error in (ClientError("name", "name_taken"), StaffError("x"), OutboundRefused("private")):
        assert isinstance(error, ValueError)


def test_area_specific_facts_stay_on_the_refusal():
    assert VerificationError("too_many_uploads", retry_after=60).retry_after == 60
    assert StaffError("account_locked").until is None
