"""The ``delegations`` claim (scope ``delegation``, natural persons): a claim source
(idp.claim_sources), so the userinfo cache hears of every change of a person's authorisations."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import scope_to_list

from idp import claim_sources
from idp.extensions import db, services
from idp.models.accounts import LEGAL, Account
from idp.models.delegations import Delegation

NAME = "delegations"


def _load(account) -> list:
    if account.account_type != "natural":
        return []
    from idp.delegations.service import delegations_claim

    return delegations_claim(account.id)


def _claims(data: list, scope: str) -> dict:
    """Only what is still valid now (the cache may keep it a few minutes: an end passed since
    is left out here)."""
    if "delegation" not in (scope_to_list(scope) or []):
        return {}
    now = services().clock.time()
    live = [item for item in data if item.get("expires_at") is None or item["expires_at"] > now]
    return {"delegations": live} if live else {}


def _person_sub(row: Delegation):
    person = row.person
    return (person.sub if person is not None else None,)


def _delegates_of_unit(unit: Account):
    """A unit's name, USCC, status or verification feed its delegates' claims (read at flush)."""
    if unit.account_type != LEGAL or unit.id is None:
        return ()
    with db.session.no_autoflush:
        return tuple(db.session.execute(
            db.select(Account.sub).join(Delegation, Delegation.person_id == Account.id)
            .where(Delegation.unit_id == unit.id)).scalars())


SOURCE = claim_sources.ClaimSource(
    name=NAME, account_columns=("id", "account_type"), load=_load, claims=_claims,
    reads=(claim_sources.Reads(Delegation, ("status", "client_ids", "all_clients", "starts_at", "ends_at",
                                            "unit_id", "accepted_at"), _person_sub),
           claim_sources.Reads(Account, ("org_name", "uscc", "status", "verification_status"), _delegates_of_unit)))


def declare() -> None:
    """Once per process (every create_app calls it)."""
    if NAME not in {source.name for source in claim_sources.sources()}:
        claim_sources.declare(SOURCE)
