"""Claims by scope (INTERFACES.md "Scopes and claims"). Absent data means an absent claim,
never an empty string."""

from __future__ import annotations

from datetime import datetime, timezone

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core import UserInfo

from idp import claim_sources
from idp.models.accounts import Account

SCOPES_SUPPORTED = ["openid", "profile", "email", "phone", "address", "offline_access",
                    "verification", "org", "delegation"]

CLAIMS_SUPPORTED = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                    "account_type", "name", "preferred_username", "gender", "birthdate",
                    "email", "phone_number", "phone_number_verified", "address",
                    "verification_status", "verified_claims", "org", "delegations", "represents"]

GENDERS = {"male": "male", "female": "female"}


def _phone_e164(phone: str | None) -> str | None:
    if not phone:
        return None
    return phone if phone.startswith("+") else "+86" + phone


def _put(info: dict, key: str, value) -> None:
    if value not in (None, "", [], {}):
        info[key] = value


TRUST_FRAMEWORK = "cn_most_platform"


def _evidence(account: Account) -> tuple[str, dict]:
    """The ``verification_process`` and the evidence, naming what was actually checked.

    - ``national_platform``: an ``electronic_record`` evidence, the national register checked
      by data comparison (``check_method`` ``data``, ``txn`` the interface's reference).
    - ``local_check_digits``: the development verifier found the check digits of the document
      number or USCC right, nothing more: ``check_method`` ``check_digits`` by
      ``local_verifier``, and no record (no register was consulted).
    - ``local_registry``: the development verifier's registry file (test data, not a
      register): ``check_method`` ``data`` against a ``local_registry_file`` record.
    - ``document_review``: a ``document`` evidence (the uploaded photos, checked by a reviewer,
      ``vpip``, ``txn`` the case).
    Anything else (an unknown method) claims the least: the check-digit form."""
    from idp.verification import service as verification

    method = account.verification_method
    if method == verification.DOCUMENT_REVIEW:
        check = {"check_method": "vpip"}
        evidence = {"type": "document", "check_details": [check],
                    "document_details": {"type": "business_licence" if account.is_legal else "idcard"}}
        process = "document_review"
    elif method == verification.NATIONAL_PLATFORM:
        check = {"check_method": "data"}
        evidence = {"type": "electronic_record", "check_details": [check],
                    "record": {"type": "unit_register" if account.is_legal else "population_register"}}
        process = "national_platform_check"
    elif method == verification.UPSTREAM_NATIONAL:
        # OIDC for Identity Assurance §5.1.1.3 "vouch": the national platform, an identity
        # provider that verified the person itself, vouched for them at sign-in (idp.federation).
        check = {"check_method": "vcrypt", "organization": "national_platform"}
        evidence = {"type": "vouch", "check_details": [check],
                    "attestation": {"type": "digital_attestation"},
                    "attester": {"organization": account.verification_reference or "national_platform"}}
        process = "national_platform_sign_in"
    elif method == verification.LOCAL_REGISTRY:
        check = {"check_method": "data", "organization": "local_verifier"}
        evidence = {"type": "electronic_record", "check_details": [check],
                    "record": {"type": "local_registry_file"}}
        process = "local_registry"
    else:
        check = {"check_method": "check_digits", "organization": "local_verifier"}
        evidence = {"type": "electronic_record", "check_details": [check]}
        process = "local_check_digits"
    if account.verification_reference:
        check["txn"] = account.verification_reference
    return process, evidence


def verified_claims(account: Account) -> dict | None:
    """OpenID Connect for Identity Assurance 1.0: what was verified, when and how (``_evidence``).
    The claims are the data as verified (kept apart from the editable profile); a change of
    that data unverifies the account in the same transaction (idp.verification.service), so
    they never describe someone the account no longer is."""
    from idp.verification.service import verified_data

    data = verified_data(account)
    if not data or account.verified_at is None:
        return None
    process, evidence = _evidence(account)
    if account.is_legal:
        claims = {"org": {k: v for k, v in (("name", data.get("org_name")), ("uscc", data.get("uscc"))) if v}}
    else:
        claims = {k: v for k, v in (("name", data.get("name")), ("birthdate", data.get("birthdate"))) if v}
    return {
        "verification": {
            "trust_framework": TRUST_FRAMEWORK,
            "time": account.verified_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verification_process": process,
            "evidence": [evidence],
        },
        "claims": claims,
    }


def id_token_claims(authentication) -> UserInfo:
    """Who signed in, from the sign-in's record (idp.login.record)."""
    return UserInfo({"sub": authentication.sub, "account_type": authentication.account_type})


# The account columns the claims of each scope read. Userinfo loads only these (the others are
# mostly personal data, decrypted as they load: bench/PROFILE.md), and the account source
# below declares exactly these, so a change of one reaches idp.oauth.userinfo_cache. Userinfo's
# claims are made from a copy of these values (AccountCopy): a claim made from a column missing
# here fails at once (AttributeError) instead of going stale in the cache.
_COLUMNS_ALWAYS = ("id", "sub", "account_type")
_COLUMNS_BY_SCOPE = {
    "profile": ("login_name", "org_name", "name", "gender", "birth_date", "updated_at"),
    "email": ("email",),
    "phone": ("phone", "phone_verified"),
    "address": ("address",),
    "verification": ("verification_status", "verification_method", "verification_reference",
                     "verified_at", "verified_data"),
    "org": ("org_name", "uscc", "org_kind"),
}


# Every column a claim is made from.
CLAIM_COLUMNS = list(dict.fromkeys([*_COLUMNS_ALWAYS, *(c for cs in _COLUMNS_BY_SCOPE.values() for c in cs)]))


def user_claims(account: Account, scope: str, sign_in: dict | None = None) -> UserInfo:
    """``sign_in``: the access token's claims, whose ``sub`` and ``account_type`` (and
    ``represents``, with delegation) came from the sign-in's record (idp.login.record): userinfo
    names whom the token was issued for, as the token does."""
    scopes = set(scope_to_list(scope) or [])
    info: dict = {"sub": account.sub, "account_type": account.account_type}
    if sign_in is not None:
        info.update((k, sign_in[k]) for k in ("sub", "account_type", "represents") if sign_in.get(k))
    if "profile" in scopes:
        _put(info, "preferred_username", account.login_name)
        _put(info, "name", account.org_name if account.is_legal else account.name)
        if not account.is_legal:
            _put(info, "gender", GENDERS.get(account.gender or ""))
            _put(info, "birthdate", account.birth_date)
        _put(info, "updated_at", int(account.updated_at.timestamp()) if account.updated_at else None)
    if "email" in scopes and account.email:
        info["email"] = account.email
        info["email_verified"] = False
    if "phone" in scopes and account.phone:
        info["phone_number"] = _phone_e164(account.phone)
        info["phone_number_verified"] = bool(account.phone_verified)
    if "address" in scopes and account.address:
        info["address"] = {"formatted": account.address}
    if "verification" in scopes:
        info["verification_status"] = account.verification_status or "unverified"
        _put(info, "verified_claims", verified_claims(account))
    if "org" in scopes and account.is_legal:
        org = {}
        _put(org, "name", account.org_name)
        _put(org, "uscc", account.uscc)
        _put(org, "kind", account.org_kind)
        _put(info, "org", org)
    # "delegation": the delegations claim is its own source (idp.delegations.claims); represents
    # comes from the sign-in's record.
    return UserInfo(info)


# -- the claims of an account, gathered from their sources (idp.claim_sources) -----------------


def gathered_claims(data: dict, scope: str, sign_in: dict | None = None) -> dict:
    """The claims for ``scope`` from what each source read (``data``: by source name, as
    ``ClaimSource.load`` gave it, fresh or from idp.oauth.userinfo_cache). ``sign_in``: the
    access token's claims, whose ``sub``, ``account_type`` and ``represents`` came from the
    sign-in's record (idp.login.record) and name whom the token was issued for."""
    info: dict = {}
    for source in claim_sources.sources():
        info.update(source.claims(data[source.name], scope))
    if sign_in is not None:
        info.update((k, sign_in[k]) for k in ("sub", "account_type", "represents") if sign_in.get(k))
    return info


class AccountCopy:
    """The claim columns of an account as attributes: what ``user_claims`` reads, rebuilt from
    the values the account source read."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)

    is_legal = Account.is_legal


def _account_values(account: Account) -> dict:
    values, times = {}, []
    for name in CLAIM_COLUMNS:
        value = getattr(account, name)
        if isinstance(value, datetime):
            value = value.isoformat()
            times.append(name)
        values[name] = value
    return {"values": values, "times": times}


def _account_claims(data: dict, scope: str) -> dict:
    values = dict(data["values"])
    for name in data["times"]:
        values[name] = datetime.fromisoformat(values[name])
    return user_claims(AccountCopy(values), scope)


ACCOUNT_SOURCE = claim_sources.declare(claim_sources.ClaimSource(
    name="account", account_columns=tuple(CLAIM_COLUMNS), load=_account_values, claims=_account_claims))
