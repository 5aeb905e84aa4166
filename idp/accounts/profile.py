"""What 我的信息 shows: the seed's table, with every piece of personal data masked."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from idp.accounts import choices
from idp.models.accounts import Account
from idp.security.pii import mask_date, mask_document, mask_email, mask_phone, mask_text

VERIFICATION_LABELS = {
    "unverified": _l("Not verified"),
    "pending": _l("Pending manual review"),
    "verified_auto": _l("Verified by the national platform"),
    "verified_manual": _l("Verified by manual review"),
    "rejected": _l("Verification rejected"),
}
# The development verifier only tests check digits (or a file of test data): its match is
# never presented as the national platform's.
LOCAL_AUTO_LABEL = _l("Verified automatically by the local development check (not the national platform)")


def verification_label(status: str | None, method: str | None = None):
    if status == "verified_auto" and method in ("local_check_digits", "local_registry"):
        return LOCAL_AUTO_LABEL
    return VERIFICATION_LABELS.get(status, status)


def _natural(a: Account):
    return [
        (_l("Basic information of the natural-person user"), [
            ("login_name", _l("Login name"), a.login_name),
            ("name", _l("Name"), a.name),
            ("gender", _l("Gender"), choices.label(choices.GENDERS, a.gender)),
            ("ethnicity", _l("Ethnicity"), a.ethnicity),
            ("job_title", _l("Job title"), a.job_title),
            ("birth_date", _l("Birth date"), mask_date(a.birth_date)),
            ("email", _l("E-mail"), mask_email(a.email)),
            ("phone", _l("Mobile phone"), mask_phone(a.phone)),
            ("landline", _l("Telephone"), mask_phone(a.landline)),
            ("identity_region", _l("Identity region"),
             choices.label(choices.IDENTITY_REGIONS, a.identity_region)),
            ("document_type", _l("Document type"), choices.label(choices.DOCUMENT_TYPES, a.document_type)),
            ("document_number", _l("Document number"), mask_document(a.document_number)),
            ("document_valid_until", _l("Document valid until"), a.document_valid_until),
            ("address", _l("Address"), mask_text(a.address)),
        ]),
    ]


def _legal(a: Account):
    return [
        (_l("Unit basic information"), [
            ("login_name", _l("Login name"), a.login_name),
            ("org_name", _l("Unit name"), a.org_name),
            ("uscc", _l("Unified social credit code"), a.uscc),
            ("org_kind", _l("Unit kind"), choices.label(choices.UNIT_KINDS, a.org_kind)),
            ("org_region", _l("Unit region"), choices.label(choices.UNIT_REGIONS, a.org_region)),
            ("address", _l("Address"), mask_text(a.address)),
            ("landline", _l("Telephone"), mask_phone(a.landline)),
        ]),
        (_l("Authorisation information"), [
            ("name", _l("Authorised person"), a.name),
            ("phone", _l("Mobile phone"), mask_phone(a.phone)),
            ("email", _l("E-mail"), mask_email(a.email)),
        ]),
        (_l("Legal representative information"), [
            ("legal_rep_name", _l("Legal representative"), a.legal_rep_name),
            ("legal_rep_document_type", _l("Document type"),
             choices.label(choices.DOCUMENT_TYPES, a.legal_rep_document_type)),
            ("legal_rep_document_number", _l("Document number"), mask_document(a.legal_rep_document_number)),
        ]),
    ]


def profile_rows(account: Account, flat: bool = False):
    sections = _legal(account) if account.is_legal else _natural(account)
    if flat:
        return [(field, value) for _, rows in sections for field, _, value in rows]
    return sections
