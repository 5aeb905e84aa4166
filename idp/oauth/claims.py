"""Claims by scope (INTERFACES.md "Scopes and claims"). Absent data means an absent claim,
never an empty string."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core import UserInfo

from idp.models.accounts import Account

SCOPES_SUPPORTED = ["openid", "profile", "email", "phone", "address", "offline_access",
                    "verification", "org", "delegation"]

CLAIMS_SUPPORTED = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                    "account_type", "name", "preferred_username", "gender", "birthdate",
                    "email", "phone_number", "phone_number_verified", "address",
                    "verification_status", "verified_claims", "org", "delegations", "acting_for"]

GENDERS = {"male": "male", "female": "female"}


def _phone_e164(phone: str | None) -> str | None:
    if not phone:
        return None
    return phone if phone.startswith("+") else "+86" + phone


def _put(info: dict, key: str, value) -> None:
    if value not in (None, "", [], {}):
        info[key] = value


def id_token_claims(account: Account) -> UserInfo:
    return UserInfo({"sub": account.sub, "account_type": account.account_type})


def user_claims(account: Account, scope: str) -> UserInfo:
    scopes = set(scope_to_list(scope) or [])
    info: dict = {"sub": account.sub, "account_type": account.account_type}
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
    if "org" in scopes and account.is_legal:
        org = {}
        _put(org, "name", account.org_name)
        _put(org, "uscc", account.uscc)
        _put(org, "kind", account.org_kind)
        _put(info, "org", org)
    # "delegation": filled by the delegation issue (delegations, acting_for).
    return UserInfo(info)
