"""Upstream identities and the accounts they sign in to: the business rules, nothing of HTTP.

An upstream identity is its issuer and subject, nothing else: never an e-mail, a phone or a
document number (Keycloak's first-broker-login advisories: an upstream that lets anyone
claim an address would hand over the account holding it). A first sign-in either proves an
existing account with its password (the views run the password check with its lockout) and
links it, or creates a natural-person account from the upstream's claims at once. Refusals
raise ``LinkRefused`` with a reason code: ``identity_linked`` (the identity opens another
account already), ``account_linked`` (the account holds another identity of that upstream),
``password_required`` (removing the link would leave the account without a way in).

Only ``db.session.flush()`` here; the views and the CLI commit.
"""

from __future__ import annotations

import secrets

from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import signals
from idp.accounts.names import is_valid_login_name, normalise_login_name
from idp.accounts.service import FieldError, create_passwordless_account, login_name_free
from idp.errors import Refused
from idp.extensions import db, services
from idp.models.accounts import NATURAL, VERIFIED_STATUSES, Account
from idp.models.federation import UpstreamLink
from idp.security import identifiers
from idp.verification.service import mark_verified_by_upstream

LINK = "link"
CREATE = "create"


class LinkRefused(Refused):
    """The link cannot be made or removed."""


def find_link(issuer: str, subject: str) -> UpstreamLink | None:
    return db.session.execute(
        db.select(UpstreamLink).filter_by(issuer=issuer, subject=subject)).scalar_one_or_none()


def links_of(account_id: int) -> list[UpstreamLink]:
    return list(db.session.execute(
        db.select(UpstreamLink).filter_by(account_id=account_id).order_by(UpstreamLink.id)).scalars())


def linked_account(issuer: str, subject: str) -> Account | None:
    link = find_link(issuer, subject)
    return db.session.get(Account, link.account_id) if link is not None else None


def note_sign_in(link: UpstreamLink) -> None:
    link.last_login_at = services().clock.now()


def _verified_name(claims: dict) -> str | None:
    """The name the upstream verified (``verified_claims``, OIDC for Identity Assurance), else
    its ``name`` claim."""
    verified = claims.get("verified_claims")
    if isinstance(verified, dict) and isinstance(verified.get("claims"), dict):
        name = verified["claims"].get("name")
        if isinstance(name, str) and name:
            return name
    name = claims.get("name")
    return name if isinstance(name, str) and name else None


def upstream_says_verified(claims: dict, verified_claim: str, verified_values: tuple[str, ...]) -> bool:
    """The configurable mapping: the claim ``verified_claim`` holds one of ``verified_values``
    (a boolean claim: ``true`` among the values)."""
    if not verified_claim or verified_claim not in claims:
        return False
    value = claims[verified_claim]
    if isinstance(value, bool):
        value = "true" if value else "false"
    return isinstance(value, str) and value in verified_values


def _apply_verification(account: Account, claims: dict, issuer: str, verified: bool) -> bool:
    """Mark the account verified on the upstream's word when the upstream says so and the
    account is the person it verified (same name); an account verified already stays as it is."""
    if not verified or account.account_type != NATURAL or account.verification_status in VERIFIED_STATUSES:
        return False
    name = _verified_name(claims)
    if not name or name != account.name:
        return False
    mark_verified_by_upstream(account, issuer)
    return True


def _add_link(account: Account, issuer: str, subject: str, origin: str) -> UpstreamLink:
    if find_link(issuer, subject) is not None:
        raise LinkRefused("identity_linked")
    if any(link.issuer == issuer for link in links_of(account.id)):
        raise LinkRefused("account_linked")
    link = UpstreamLink(account_id=account.id, issuer=issuer, subject=subject, origin=origin,
                        last_login_at=services().clock.now())
    db.session.add(link)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise LinkRefused("identity_linked") from None
    signals.upstream_linked.send(current_app._get_current_object(), subject=account.login_name,
                                 details={"origin": origin, "issuer": issuer[:100]})
    return link


def link_existing(account: Account, issuer: str, subject: str, claims: dict, verified: bool) -> UpstreamLink:
    """Link after the account was proved with its password (the caller did that)."""
    link = _add_link(account, issuer, subject, LINK)
    _apply_verification(account, claims, issuer, verified)
    db.session.flush()
    return link


def _login_name_from(claims: dict) -> str:
    """A free login name from the upstream's ``preferred_username``, else a generated one
    (``gov_`` and random characters). Never the e-mail or phone: those name nothing here."""
    wanted = normalise_login_name(claims.get("preferred_username") if isinstance(
        claims.get("preferred_username"), str) else "")
    if wanted and is_valid_login_name(wanted) and "@" not in wanted and login_name_free(wanted):
        return wanted
    while True:
        candidate = "gov_" + secrets.token_hex(5)
        if login_name_free(candidate):
            return candidate


def _profile_from(claims: dict) -> dict:
    profile: dict = {}
    name = _verified_name(claims)
    if name and len(name) <= 100:
        profile["name"] = name
    email = claims.get("email")
    if isinstance(email, str) and "@" in email and len(email) <= 254 and claims.get("email_verified") is True:
        profile["email"] = email
    phone = identifiers.normalise_mobile(claims.get("phone_number") or "") if isinstance(
        claims.get("phone_number"), str) else None
    if phone:
        profile["phone"] = phone
        profile["phone_verified"] = claims.get("phone_number_verified") is True
    verified = claims.get("verified_claims")
    birthdate = (verified.get("claims") or {}).get("birthdate") if isinstance(verified, dict) else None
    birthdate = birthdate or claims.get("birthdate")
    if isinstance(birthdate, str) and len(birthdate) == 10:
        profile["birth_date"] = birthdate
    return profile


def create_from_claims(issuer: str, subject: str, claims: dict, verified: bool) -> Account:
    """A natural-person account made from the upstream's claims at once; what they lack is
    asked later, as a required action (``missing_profile``)."""
    if find_link(issuer, subject) is not None:
        raise LinkRefused("identity_linked")
    try:
        account = create_passwordless_account(_login_name_from(claims), **_profile_from(claims))
    except FieldError as clash:  # a name taken meanwhile: one more try with a generated name
        if clash.reason != "login_name_taken":
            raise
        account = create_passwordless_account("gov_" + secrets.token_hex(5), **_profile_from(claims))
    _add_link(account, issuer, subject, CREATE)
    _apply_verification(account, claims, issuer, verified)
    db.session.flush()
    return account


def missing_profile(account: Account) -> list[str]:
    """What an account made from upstream claims still lacks (the required action asks it):
    a name and a reserved mobile phone, as a registration would have."""
    missing = []
    if not account.name:
        missing.append("name")
    if not account.phone:
        missing.append("phone")
    return missing


def needs_profile(account: Account) -> bool:
    """Only accounts without a password (made from an upstream's claims) are asked."""
    if getattr(account, "password_hash", "") is not None:
        return False
    return bool(missing_profile(account))


def complete_profile(account: Account, name: str | None, phone: str | None) -> None:
    from idp.accounts.service import update_profile_fields

    update_profile_fields(account, {k: v for k, v in (("name", name), ("phone", phone)) if v})


def unlink(account: Account, link_id: int, actor: str | None = None, by_staff: bool = False) -> UpstreamLink:
    """Remove a link. The user may only when the account has a password (else nothing would
    let them in); staff may always (the account keeps its other ways in, or recovery)."""
    link = db.session.get(UpstreamLink, link_id)
    if link is None or link.account_id != account.id:
        raise LinkRefused("no_such_link")
    if not by_staff and not account.password_hash:
        raise LinkRefused("password_required")
    db.session.delete(link)
    db.session.flush()
    signals.upstream_unlinked.send(current_app._get_current_object(), subject=account.login_name, actor=actor,
                                   details={"issuer": link.issuer[:100], "by": "staff" if by_staff else "user"})
    return link
