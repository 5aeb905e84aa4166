"""The rules of delegation (代办): units authorise natural persons to act for them, persons
accept or decline, and a sign-in may act for a unit. No HTTP here; only ``flush``, the caller
commits (a view, a CLI command, the worker).

An authorisation is *active* at a moment when it is accepted (or merely granted, while
``DELEGATION_REQUIRE_ACCEPTANCE`` is off), its unit has an account that is active (and real-name
verified, while ``DELEGATION_VERIFIED_UNITS_ONLY`` is on), and the moment is within its dates.
Tokens issued while acting for a unit carry ``represents``; whether they still hold is asked at
every use (idp.security.cut_offs.represents_ended): revoking, declining, changing an
authorisation, a unit losing its verification, disabling the unit each write a cut-off, and the
validity's end is in the claim itself. Nothing waits for a sweep; the sweep (``note_expiries``)
only writes the audit event of an expiry and tells the systems concerned.

Reason codes (``DelegationRefused.reason``): ``not_a_unit``, ``unit_not_verified``,
``person_not_found`` (an unknown login name, a legal account, or a name that does not match:
one answer, so nothing is revealed), ``lookup_throttled``, ``no_client``, ``client_not_delegable``,
``starts_in_the_past``, ``ends_in_the_past``, ``dates_reversed``, ``invalid_date``,
``role_too_long``, ``not_found``, ``already_ended``, ``not_pending``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from idp import notices, signals, unit_of_work
from idp.accounts.names import login_name_key, normalise_login_name
from idp.accounts.service import find_account
from idp.errors import Refused
from idp.extensions import db, services
from idp.models.accounts import ACTIVE, LEGAL, NATURAL, VERIFIED_STATUSES, Account
from idp.models.clients import Client
from idp.models.delegations import (ACCEPTED, DECLINED, LIVE_STATUSES, PENDING, REVOKED, SOURCE_CLI,
                                    SOURCE_UNIT, DelegatedSignIn, Delegation)
from idp.models.oauth import Job
from idp.security import cut_offs
from idp.security.ratelimit import Limit

SCOPE = "delegation"
DEFAULT_ROLE = "经办人"  # the role label a unit gives when it types none (the seed's wording)
ROLE_MAX = 40
ZONE = ZoneInfo("Asia/Shanghai")  # dates are chosen and shown as calendar days in China
SELF = "self"

# Failed look-ups of a person (wrong login name or name) a unit may make: the name check is a
# safeguard, and guessing names must not become a way to learn them.
LOOKUP_FAILURES = Limit("delegation_lookup", 10, 3600)
# Notices one phone may receive per day from delegation (grant and revocation): a unit
# granting and revoking in a loop must not flood a person's phone.
NOTICES_PER_PHONE = Limit("delegation_sms", 10, 86400)


class DelegationRefused(Refused):
    pass


# -- time ------------------------------------------------------------------------------------

def today() -> date:
    return services().clock.now().astimezone(ZONE).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, ZONE).astimezone(timezone.utc)


def last_day(delegation: Delegation) -> date | None:
    """The last calendar day of validity (``ends_at`` is the start of the next one)."""
    if delegation.ends_at is None:
        return None
    return (delegation.ends_at.astimezone(ZONE) - timedelta(seconds=1)).date()


def first_day(delegation: Delegation) -> date:
    return delegation.starts_at.astimezone(ZONE).date()


def parse_day(value, field: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise DelegationRefused("invalid_date", field) from None


# -- systems ---------------------------------------------------------------------------------

def delegable_clients() -> list[Client]:
    """The business systems a unit may delegate: enabled and allowed the ``delegation`` scope
    (a system for units only, too: a person acting for a unit may enter it, idp.login.policy)."""
    rows = db.session.execute(db.select(Client).filter_by(enabled=True).order_by(Client.id)).scalars()
    return [c for c in rows if SCOPE in (c.scopes or [])]


def services_of(delegation: Delegation, delegable: list[str] | None = None) -> list[str]:
    """The client ids the authorisation covers now."""
    ids = delegable if delegable is not None else [c.client_id for c in delegable_clients()]
    if delegation.all_clients:
        return list(ids)
    return [c for c in delegation.client_ids if c in ids]


# -- the state of an authorisation -----------------------------------------------------------

def unit_may_delegate(unit: Account | None) -> bool:
    if unit is None or unit.account_type != LEGAL or unit.status != ACTIVE:
        return False
    return not current_app.config["DELEGATION_VERIFIED_UNITS_ONLY"] or unit.verification_status in VERIFIED_STATUSES


def is_active(delegation: Delegation, now: datetime | None = None) -> bool:
    now = now or services().clock.now()
    if delegation.status == PENDING and current_app.config["DELEGATION_REQUIRE_ACCEPTANCE"]:
        return False
    return (delegation.status in LIVE_STATUSES and unit_may_delegate(delegation.unit)
            and delegation.starts_at <= now and (delegation.ends_at is None or now < delegation.ends_at))


def state(delegation: Delegation, now: datetime | None = None) -> str:
    """What the pages show: ``waiting`` (no unit account yet), ``pending``, ``active``,
    ``not_started``, ``expired``, ``unit_inactive``, ``declined``, ``revoked``."""
    now = now or services().clock.now()
    if delegation.status in (DECLINED, REVOKED):
        return delegation.status
    if delegation.unit_id is None:
        return "waiting"
    if delegation.ends_at is not None and now >= delegation.ends_at:
        return "expired"
    if not unit_may_delegate(delegation.unit):
        return "unit_inactive"
    if delegation.status == PENDING and current_app.config["DELEGATION_REQUIRE_ACCEPTANCE"]:
        return "pending"
    if delegation.starts_at > now:
        return "not_started"
    return "active"


# -- look-ups --------------------------------------------------------------------------------

def find(delegation_id: str | None) -> Delegation | None:
    if not delegation_id or len(delegation_id) > 40:
        return None
    return db.session.get(Delegation, delegation_id)


def of_unit(unit: Account) -> list[Delegation]:
    return list(db.session.execute(db.select(Delegation).filter_by(unit_id=unit.id)
                                   .order_by(Delegation.created_at.desc())).scalars())


def of_person(person: Account) -> list[Delegation]:
    return list(db.session.execute(db.select(Delegation).filter_by(person_id=person.id)
                                   .where(Delegation.unit_id.is_not(None))
                                   .order_by(Delegation.created_at.desc())).scalars())


def _live_of(unit_id: int, person_id: int) -> Delegation | None:
    return db.session.execute(db.select(Delegation).filter_by(unit_id=unit_id, person_id=person_id)
                              .where(Delegation.status.in_(LIVE_STATUSES))).scalars().first()


def choices_for(person_id: int, client_id: str) -> list[Delegation]:
    """The authorisations a person may act under at a sign-in to ``client_id`` now (one query;
    the units come with it)."""
    rows = db.session.execute(db.select(Delegation).filter_by(person_id=person_id)
                              .where(Delegation.status.in_(LIVE_STATUSES), Delegation.unit_id.is_not(None))
                              .order_by(Delegation.created_at)).scalars().all()
    if not rows:
        return []
    delegable = [c.client_id for c in delegable_clients()]
    now = services().clock.now()
    return [d for d in rows if is_active(d, now) and client_id in services_of(d, delegable)]


def represents_claim(delegation: Delegation) -> dict:
    """INTERFACES.md ``represents``: the unit, this authorisation and its systems and validity
    (``valid_until``: seconds since the epoch, absent without an end)."""
    unit = delegation.unit
    claim = {"sub": unit.sub, "sub_id_type": "uscc", "uscc": unit.uscc, "name": unit.org_name,
             "delegation_id": delegation.id, "services": services_of(delegation)}
    if delegation.ends_at is not None:
        claim["valid_until"] = int(delegation.ends_at.timestamp())
    return {k: v for k, v in claim.items() if v not in (None, "")}


def still_holds(represents: dict, client_id: str) -> bool:
    """At a refresh or a code exchange (not the hot path of userinfo and introspection): the
    authorisation a token was issued under is still active, for this client, with the validity
    the token states (a change of it ends the tokens issued before)."""
    delegation_id = str(represents.get("delegation_id"))
    if len(delegation_id) > 40:
        return False
    # Read with a shared lock (PostgreSQL): a revocation's update waits for this refresh to
    # commit, and its cut-off, written after its own commit, then covers what this issued.
    delegation = db.session.execute(db.select(Delegation).filter_by(id=delegation_id)
                                    .with_for_update(read=True, of=Delegation)).scalar_one_or_none()
    if delegation is None or delegation.unit is None or delegation.unit.sub != represents.get("sub"):
        return False
    valid_until = int(delegation.ends_at.timestamp()) if delegation.ends_at is not None else None
    return (is_active(delegation) and valid_until == represents.get("valid_until")
            and client_id in services_of(delegation))


# -- granting and changing -------------------------------------------------------------------

@dataclass(frozen=True)
class Terms:
    """What a unit chooses: ``client_ids`` None for every delegable system."""

    client_ids: tuple[str, ...] | None
    starts: date | None = None
    ends: date | None = None
    role: str = ""


def _check_terms(terms: Terms, existing: Delegation | None = None) -> tuple[bool, list[str], datetime, datetime | None, str]:
    delegable = [c.client_id for c in delegable_clients()]
    if terms.client_ids is None:
        all_clients, client_ids = True, []
    else:
        client_ids = list(dict.fromkeys(terms.client_ids))
        if not client_ids:
            raise DelegationRefused("no_client", "client_ids")
        if any(c not in delegable for c in client_ids):
            raise DelegationRefused("client_not_delegable", "client_ids")
        all_clients = False
    first = today()
    starts = terms.starts or first
    kept_start = existing is not None and starts == first_day(existing)
    if starts < first and not kept_start:
        raise DelegationRefused("starts_in_the_past", "starts")
    if terms.ends is not None:
        if terms.ends < first:
            raise DelegationRefused("ends_in_the_past", "ends")
        if terms.ends < starts:
            raise DelegationRefused("dates_reversed", "ends")
    role = (terms.role or "").strip() or DEFAULT_ROLE
    if len(role) > ROLE_MAX:
        raise DelegationRefused("role_too_long", "role")
    ends_at = day_start(terms.ends + timedelta(days=1)) if terms.ends is not None else None
    return all_clients, client_ids, day_start(starts), ends_at, role


def _check_unit(unit: Account) -> None:
    if unit is None or unit.account_type != LEGAL or unit.status != ACTIVE:
        raise DelegationRefused("not_a_unit")
    if current_app.config["DELEGATION_VERIFIED_UNITS_ONLY"] and unit.verification_status not in VERIFIED_STATUSES:
        raise DelegationRefused("unit_not_verified")


def find_person(unit: Account, login_name: str, name: str | None) -> Account:
    """The natural person a unit names by login name and (as a safeguard) name. An unknown
    login name, a legal account and a name that does not match get the same refusal, counted
    against the unit: the answer never tells which, nor any name the unit did not type."""
    if LOOKUP_FAILURES.exceeded(str(unit.id)):
        raise DelegationRefused("lookup_throttled", "login_name")
    person = find_account(login_name_key(normalise_login_name(login_name or "")))
    if (person is None or person.account_type != NATURAL or person.status != ACTIVE
            or (name is not None and (person.name or "").strip() != name.strip())):
        LOOKUP_FAILURES.hit(str(unit.id))
        raise DelegationRefused("person_not_found", "login_name")
    return person


def grant(unit: Account, person: Account, terms: Terms, *, source: str = SOURCE_UNIT,
          actor: str | None = None) -> tuple[Delegation, bool]:
    """Authorise ``person`` to act for ``unit``; (the authorisation, whether it is new). A
    second authorisation of the same person by the same unit changes the live one (its systems
    are added to those already given, the dates and role replaced): never a duplicate, and
    nothing already given is lost. Made by an operator or an import: recorded as accepted."""
    _check_unit(unit)
    if person is None or person.account_type != NATURAL:
        raise DelegationRefused("person_not_found", "login_name")
    existing = _live_of(unit.id, person.id)
    if existing is not None:
        if terms.client_ids is not None and not existing.all_clients:
            terms = Terms(tuple(dict.fromkeys([*existing.client_ids, *terms.client_ids])),
                          terms.starts, terms.ends, terms.role)
        elif existing.all_clients:
            terms = Terms(None, terms.starts, terms.ends, terms.role)
        change(existing, terms, actor=actor or unit.login_name)
        if source != SOURCE_UNIT and existing.status == PENDING:
            _accept(existing, actor)
        return existing, False
    all_clients, client_ids, starts_at, ends_at, role = _check_terms(terms)
    now = services().clock.now()
    accepted = source != SOURCE_UNIT
    delegation = Delegation(unit_id=unit.id, unit_uscc=unit.uscc or "", person_id=person.id,
                            all_clients=all_clients, client_ids=client_ids, role=role, starts_at=starts_at,
                            ends_at=ends_at, status=ACCEPTED if accepted else PENDING, source=source,
                            created_at=now, updated_at=now, accepted_at=now if accepted else None)
    delegation.unit, delegation.person = unit, person
    db.session.add(delegation)
    db.session.flush()
    _announce(signals.delegation_granted, delegation, actor or unit.login_name, source=source)
    _notify(delegation, "delegation_granted")
    return delegation, True


def change(delegation: Delegation, terms: Terms, *, actor: str) -> Delegation:
    """New systems, dates or role for a live authorisation. Tokens issued under it before
    carry the old terms: they are cut off (the person signs in again under the new ones)."""
    if delegation.status not in LIVE_STATUSES:
        raise DelegationRefused("already_ended")
    all_clients, client_ids, starts_at, ends_at, role = _check_terms(terms, delegation)
    delegation.all_clients, delegation.client_ids, delegation.role = all_clients, client_ids, role
    delegation.starts_at, delegation.ends_at = starts_at, ends_at
    delegation.updated_at = services().clock.now()
    delegation.expiry_noted_at = None
    db.session.flush()
    _cut_off_after_commit(delegation.id)
    _log_out_systems([delegation.id], delegation.person)
    _announce(signals.delegation_changed, delegation, actor)
    return delegation


def accept(delegation: Delegation, person: Account) -> None:
    if delegation is None or delegation.person_id != person.id:
        raise DelegationRefused("not_found")
    if delegation.status != PENDING:
        raise DelegationRefused("not_pending")
    _accept(delegation, person.login_name)


def _accept(delegation: Delegation, actor: str | None) -> None:
    now = services().clock.now()
    delegation.status, delegation.accepted_at, delegation.updated_at = ACCEPTED, now, now
    db.session.flush()
    _announce(signals.delegation_accepted, delegation, actor)


def decline(delegation: Delegation, person: Account) -> None:
    """The person no longer acts for the unit (a pending or an accepted authorisation)."""
    if delegation is None or delegation.person_id != person.id:
        raise DelegationRefused("not_found")
    _end(delegation, DECLINED, person.login_name, signals.delegation_declined)


def revoke(delegation: Delegation, *, unit: Account | None = None, actor: str | None = None) -> None:
    """The unit (``unit``: refused when it is not the authorisation's) or an operator ends it."""
    if delegation is None or (unit is not None and delegation.unit_id != unit.id):
        raise DelegationRefused("not_found")
    _end(delegation, REVOKED, actor or (unit.login_name if unit else None), signals.delegation_revoked)
    _notify(delegation, "delegation_revoked")


def _end(delegation: Delegation, status: str, actor: str | None, signal) -> None:
    if delegation.status not in LIVE_STATUSES:
        raise DelegationRefused("already_ended")
    now = services().clock.now()
    delegation.status, delegation.ended_at, delegation.updated_at = status, now, now
    db.session.flush()
    # At every use of every token issued under it (idp.security.cut_offs), from the commit on.
    _cut_off_after_commit(delegation.id)
    _log_out_systems([delegation.id], delegation.person)
    _announce(signal, delegation, actor)


# -- the legacy import: authorisations waiting for their unit --------------------------------

def grant_waiting(person: Account, uscc: str, client_ids: list[str] | None, source: str) -> Delegation:
    """An authorisation the import found (the unit's Torch account held by a person), for a
    unit known only by its USCC. When a unit account with that USCC exists it is granted at
    once; otherwise it waits, and takes effect when a unit with that USCC is real-name verified
    (``activate_waiting``). Either way it is recorded as accepted (the import records what the
    old platform had). ``client_ids`` None: every delegable system."""
    if person is None or person.account_type != NATURAL:
        raise DelegationRefused("person_not_found")
    unit = db.session.execute(db.select(Account).filter_by(uscc=uscc, account_type=LEGAL)).scalar_one_or_none()
    terms = Terms(tuple(client_ids) if client_ids is not None else None)
    if unit is not None and unit_may_delegate(unit):
        return grant(unit, person, terms, source=source)[0]
    existing = db.session.execute(db.select(Delegation).filter_by(unit_uscc=uscc, person_id=person.id)
                                  .where(Delegation.status.in_(LIVE_STATUSES))).scalars().first()
    if existing is not None:
        return existing
    now = services().clock.now()
    delegation = Delegation(unit_id=None, unit_uscc=uscc, person_id=person.id, all_clients=client_ids is None,
                            client_ids=list(client_ids or []), role=DEFAULT_ROLE, starts_at=now, ends_at=None,
                            status=ACCEPTED, source=source, created_at=now, updated_at=now, accepted_at=now)
    delegation.person = person
    db.session.add(delegation)
    db.session.flush()
    return delegation


def activate_waiting(unit: Account) -> list[Delegation]:
    """The waiting authorisations of ``unit``'s USCC now belong to it (called when the unit is
    real-name verified, from the flush that verifies it)."""
    if unit.account_type != LEGAL or not unit.uscc:
        return []
    with db.session.no_autoflush:
        rows = db.session.execute(db.select(Delegation).filter_by(unit_uscc=unit.uscc, unit_id=None)
                                  .where(Delegation.status.in_(LIVE_STATUSES))).scalars().all()
    for row in rows:
        row.unit = unit
        row.updated_at = services().clock.now()
        signals.delegation_granted.send(current_app._get_current_object(), subject=unit.login_name,
                                        details={"delegation_id": row.id, "source": row.source,
                                                 "waited_for_unit": True})
    return list(rows)


# -- sign-in ---------------------------------------------------------------------------------

def record_sign_in(delegation_id: str, sid: str | None, client_id: str, account_id: int) -> None:
    """A system got a code in session ``sid`` while the person acted under this authorisation."""
    if not sid:
        return
    known = db.session.execute(db.select(DelegatedSignIn.id).filter_by(
        delegation_id=delegation_id, sid=sid, client_id=client_id)).first()
    if known is None:
        db.session.add(DelegatedSignIn(delegation_id=delegation_id, sid=sid, client_id=client_id,
                                       account_id=account_id, created_at=services().clock.now()))


def _log_out_systems(delegation_ids: list[str], person: Account | None) -> None:
    """OpenID Connect Back-Channel Logout for the sessions in which systems got tokens under
    these authorisations: one job per system and session (idp.oauth.backchannel delivers it,
    and skips a system without a back-channel URI). Added to the caller's transaction."""
    if not delegation_ids:
        return
    with db.session.no_autoflush:
        rows = db.session.execute(db.select(DelegatedSignIn).where(
            DelegatedSignIn.delegation_id.in_(delegation_ids))).scalars().all()
        for row in rows:
            subject = person if person is not None and person.id == row.account_id else db.session.get(Account, row.account_id)
            if subject is None:
                continue
            db.session.add(Job(kind="backchannel_logout", run_after=services().clock.now(),
                               payload={"client_id": row.client_id, "sub": subject.sub, "sid": row.sid}))
            db.session.delete(row)


def deliver_inline() -> None:
    """In development (``JOBS_INLINE``) the back-channel logouts queued above are delivered
    when the unit of work has ended (after its commit: the jobs are rows of it); in production
    `idp worker` delivers them. They are added as rows, not through ``jobs.enqueue``, because a
    unit's change of status queues them from inside a flush (``_unit_changes``)."""
    if current_app.config["JOBS_INLINE"]:
        from idp import jobs

        jobs.run_after_unit()


# -- expiry ----------------------------------------------------------------------------------

def note_expiries() -> int:
    """Audit the authorisations whose validity has run out and tell the systems concerned
    (back-channel logout). Tokens did not wait for this: their ``represents`` carries the end."""
    now = services().clock.now()
    rows = db.session.execute(db.select(Delegation).where(
        Delegation.status.in_(LIVE_STATUSES), Delegation.ends_at.is_not(None), Delegation.ends_at <= now,
        Delegation.expiry_noted_at.is_(None))).scalars().all()
    for row in rows:
        row.expiry_noted_at = now
        _log_out_systems([row.id], row.person)
        _announce(signals.delegation_expired, row, None)
    db.session.flush()
    return len(rows)


# -- the unit's status follows into its authorisations --------------------------------------

def _unit_changes(session: Session, flush_context, instances) -> None:
    """A unit that stops being able to delegate (verification lost, disabled) ends what was
    issued under its authorisations: back-channel logout now (in the same transaction), the
    cut-off after the commit. A unit newly verified takes its waiting authorisations."""
    for account in list(session.dirty) + list(session.new):
        if not isinstance(account, Account) or account.account_type != LEGAL:
            continue
        state_ = inspect(account)
        changed = {"verification_status", "status"} & set(state_.committed_state)
        if not changed and not state_.pending:
            continue
        if account.verification_status in VERIFIED_STATUSES and account.status == ACTIVE:
            if "verification_status" in changed or state_.pending:
                activate_waiting(account)
            continue
        if state_.pending:
            continue
        # What the row says before this flush: an attribute set on an expired instance (after a
        # commit) has no old value in committed_state.
        with session.no_autoflush:
            was = session.execute(db.select(Account.verification_status, Account.status)
                                  .where(Account.id == account.id)).one()
        if was.verification_status in VERIFIED_STATUSES and was.status == ACTIVE:
            with session.no_autoflush:
                ids = list(session.execute(db.select(Delegation.id).filter_by(unit_id=account.id)
                                           .where(Delegation.status.in_(LIVE_STATUSES))).scalars())
            _log_out_systems(ids, None)
            unit_of_work.after_commit(functools.partial(cut_offs.cut_off_represented, account.sub))


def _cut_off_after_commit(delegation_id: str) -> None:
    """The cut-off is written once the change is committed, never before: a refresh that read
    the authorisation as active (idp.delegations.service.still_holds, under a shared lock) has
    committed by then, and what it issued is older than the cut-off; and a change rolled back
    cuts nothing off."""
    unit_of_work.after_commit(functools.partial(cut_offs.cut_off_delegation, delegation_id))


def install() -> None:
    for name, listener in (("before_flush", _unit_changes),):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


# -- notices and audit -----------------------------------------------------------------------

def _announce(signal, delegation: Delegation, actor: str | None, **extra) -> None:
    unit = delegation.unit
    signal.send(current_app._get_current_object(), subject=unit.login_name if unit else delegation.unit_uscc,
                actor=actor,
                details={"delegation_id": delegation.id, "person": delegation.person.login_name,
                         "clients": "all" if delegation.all_clients else list(delegation.client_ids),
                         "status": delegation.status, **extra})


def _notify(delegation: Delegation, template: str) -> None:
    """The SMS to the delegate (its own limit per phone: a loop of grants cannot flood it)."""
    person, unit = delegation.person, delegation.unit
    if not person.phone or unit is None:
        return
    if NOTICES_PER_PHONE.exceeded(person.phone):
        return
    NOTICES_PER_PHONE.hit(person.phone)
    until = last_day(delegation)
    params = {"unit": unit.org_name or unit.login_name, "until": until.isoformat() if until else "长期"}
    notices.sms(person.login_name, person.phone, template, params)


# -- the delegations claim --------------------------------------------------------------------

def delegations_claim(person_id: int) -> list[dict]:
    """INTERFACES.md ``delegations``: the units a person acts for now, with systems and end."""
    rows = db.session.execute(db.select(Delegation).filter_by(person_id=person_id)
                              .where(Delegation.status.in_(LIVE_STATUSES), Delegation.unit_id.is_not(None))
                              .order_by(Delegation.created_at)).scalars().all()
    delegable = [c.client_id for c in delegable_clients()] if rows else []
    now = services().clock.now()
    found = []
    for d in rows:
        if not is_active(d, now):
            continue
        item = {"org": {k: v for k, v in (("sub", d.unit.sub), ("name", d.unit.org_name), ("uscc", d.unit.uscc)) if v},
                "services": services_of(d, delegable)}
        if d.ends_at is not None:
            item["expires_at"] = int(d.ends_at.timestamp())
        found.append(item)
    return found


__all__ = ["ACCEPTED", "DECLINED", "PENDING", "REVOKED", "SELF", "SOURCE_CLI", "SOURCE_UNIT",
           "DelegationRefused", "Terms", "accept", "activate_waiting", "choices_for", "decline",
           "delegable_clients", "delegations_claim", "find", "find_person", "grant", "grant_waiting",
           "is_active", "note_expiries", "of_person", "of_unit", "record_sign_in", "represents_claim",
           "revoke", "still_holds"]
