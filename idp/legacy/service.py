"""The legacy account import and the account lookup: the rules, nothing of HTTP.

``import_file`` reads an export (idp.legacy.parser) in batches and decides each record by the
rules of issue 16, in their order:

Units (key: USCC)
  (2) a legal account with this USCC exists here → no new account;
  (4) ``holder=person`` → a natural-person account named the USCC (or "HJ-" + USCC if taken)
      with the legacy password, owed the unit's authorisation for the Torch systems
      (``LEGACY_TORCH_CLIENTS``), waiting on the USCC;
  (3) the login name equal to the USCC is taken → a legal account "HJ_" + USCC;
  (1) otherwise → a legal account named the USCC.
Persons (key: mobile)
  (2) a natural account with the mobile as login name exists → no new account;
  (4) a verified person has that mobile as reserved phone → no new account (the lookup points
      to the appeal);
  (3) the Torch login name is taken → "HJ-" + mobile;
  (1) otherwise → the Torch login name carries on.

Every record decided gets a row in ``legacy_import_records`` (source, kind, key: unique), in
the same transaction as its account: a second run finds the row and changes nothing
(``unchanged``); a run killed half way loses at most its open batch, and the next run of the
file decides the rest. A key seen twice in one file is a ``duplicate_key`` on the later line
(the row remembers the file's digest and the line). Imported accounts keep the legacy hash as
it came (no argon2 here: the login rehashes it at the first sign-in), are unverified, keep
the reserved phone, and must complete their real-name data at the first sign-in.

Accounts and rows are written with one multi-row INSERT per batch (no ORM unit of work per
account): that is what lets a million records import at thousands per second (bench/).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp import signals
from idp.accounts.names import login_name_key
from idp.errors import Refused
from idp.extensions import db, services
from idp.legacy import parser
from idp.models import like
from idp.models.accounts import ACTIVE, LEGAL, NATURAL, UNVERIFIED, VERIFIED_STATUSES, Account
from idp.models.legacy import (
    FINISHED,
    INTERRUPTED,
    RUNNING,
    SOURCES,
    LegacyImportRecord,
    LegacyImportRun,
    LegacyImportSkip,
)
from idp.security.passwords import hash_params

# The JSON line lists at most this many skipped lines (the run keeps all of them).
SKIPPED_LIST_MAX = 10_000
# Reasons the import itself gives, besides the parser's (idp.legacy.parser.reasons).
IMPORT_REASONS = ("duplicate_key", "no_free_login_name")
MAX_RETRIES = 3


class ImportRefused(Refused):
    """The whole file is refused (unknown source, unreadable file); codes: ``unknown_source``,
    ``file_unreadable``."""


@dataclass
class Summary:
    units: Counter = field(default_factory=Counter)
    persons: Counter = field(default_factory=Counter)
    unchanged: int = 0
    skipped: list[dict] = field(default_factory=list)
    skipped_total: int = 0

    def skip(self, line: int, reason: str, field_name: str | None = None) -> None:
        self.skipped_total += 1
        if len(self.skipped) < SKIPPED_LIST_MAX:
            entry = {"line": line, "reason": reason}
            if field_name:
                entry["field"] = field_name
            self.skipped.append(entry)

    def merge(self, other: Summary) -> None:
        self.units.update(other.units)
        self.persons.update(other.persons)
        self.unchanged += other.unchanged
        for entry in other.skipped:
            self.skip(entry["line"], entry["reason"], entry.get("field"))

    def counts(self) -> dict:
        return {"units": {str(n): self.units[n] for n in (1, 2, 3, 4)},
                "persons": {str(n): self.persons[n] for n in (1, 2, 3, 4)},
                "unchanged": self.unchanged, "skipped": self.skipped_total}

    def as_json(self) -> dict:
        data = self.counts()
        data["skipped"] = self.skipped
        if self.skipped_total > len(self.skipped):
            data["skipped_more"] = self.skipped_total - len(self.skipped)
        return data


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def operator() -> str:
    """Who runs the import: the operator behind sudo, else the system user."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def torch_clients() -> tuple[str, ...]:
    """The client ids of 高企认定 and 科小企评价 (clients/gaoqi.toml, clients/kexiaoqi.toml)."""
    return tuple(c.strip() for c in current_app.config["LEGACY_TORCH_CLIENTS"].split(",") if c.strip())


def import_file(path: str | Path, *, source: str = "torch", dry_run: bool = False,
                started_by: str | None = None, checkpoint: Callable[[], None] | None = None,
                batch_size: int | None = None, after_batch: Callable[[int], None] | None = None) -> dict:
    """Import ``path``; returns the JSON line of INTERFACES.md.

    ``checkpoint`` makes a finished batch durable (the CLI passes ``db.session.commit``); this
    module only flushes. A dry run decides everything inside one transaction, so that later
    records see the accounts earlier ones would make, and rolls it back at the end.
    ``after_batch(last_line)`` is called after each checkpoint (progress; tests).
    """
    if source not in SOURCES:
        raise ImportRefused("unknown_source", "source")
    path = Path(path)
    try:
        digest = file_digest(path)
    except OSError:
        raise ImportRefused("file_unreadable", "file") from None
    checkpoint = db.session.flush if dry_run or checkpoint is None else checkpoint
    batch_size = batch_size or current_app.config["LEGACY_IMPORT_BATCH"]

    run = _start_run(path, source, digest, started_by or operator())
    checkpoint()
    summary = Summary()
    batch: list[parser.Record] = []
    with open(path, "rb") as handle:
        for item in parser.records(handle):
            batch.append(item)  # records and skipped lines, in the file's order
            if len(batch) >= batch_size:
                _batch(run, batch, summary, checkpoint, after_batch, dry_run)
                batch = []
    if batch:
        _batch(run, batch, summary, checkpoint, after_batch, dry_run)

    result = summary.as_json()
    if dry_run:
        db.session.rollback()
        return result
    run.status = FINISHED
    run.finished_at = services().clock.now()
    run.counts = summary.counts()
    signals.legacy_import_finished.send(
        current_app._get_current_object(), subject=path.name[:100], actor=run.started_by,
        details={"run_id": run.id, "source": source, "file_digest": digest, **summary.counts()},
    )
    db.session.flush()
    return result


def _start_run(path: Path, source: str, digest: str, started_by: str) -> LegacyImportRun:
    """A new run; an unfinished run of the same file (killed) is marked interrupted and
    named as the one this run resumes."""
    earlier = db.session.execute(
        sa.select(LegacyImportRun).where(LegacyImportRun.file_digest == digest,
                                         LegacyImportRun.source == source,
                                         LegacyImportRun.status == RUNNING)
        .order_by(LegacyImportRun.id.desc())
    ).scalars().all()
    for old in earlier:
        old.status = INTERRUPTED
    run = LegacyImportRun(source=source, file_name=path.name[:255], file_digest=digest,
                          started_by=started_by[:100], status=RUNNING, last_line=0,
                          counts={}, resumes_run_id=earlier[0].id if earlier else None)
    db.session.add(run)
    db.session.flush()
    return run


def _batch(run, items, summary: Summary, checkpoint, after_batch, dry_run: bool) -> None:
    """Decide and write one batch. A uniqueness clash with a concurrent writer (a
    registration meanwhile) throws the batch away (everything before it is committed) and
    decides it again."""
    run_id, source, digest = run.id, run.source, run.file_digest
    last_line = max(item.line for item in items)
    for attempt in range(MAX_RETRIES):
        try:
            if _postgres():
                # A batch need not wait for the disk: should the server crash, the batches it
                # loses are lost whole (accounts with their records) and the next run decides
                # them again.
                db.session.execute(sa.text("SET LOCAL synchronous_commit = off"))
            part = _decide_and_write(run_id, source, digest, items)
            db.session.execute(sa.update(LegacyImportRun).where(LegacyImportRun.id == run_id)
                               .values(last_line=last_line))
            db.session.flush()
        except IntegrityError:
            if dry_run or attempt == MAX_RETRIES - 1:
                raise
            db.session.rollback()
            continue
        break
    summary.merge(part)
    db.session.execute(sa.update(LegacyImportRun).where(LegacyImportRun.id == run_id)
                       .values(counts=summary.counts()))
    checkpoint()
    if after_batch is not None:
        after_batch(last_line)


@dataclass
class _Existing:
    """What the database holds that bears on one batch's decisions."""

    records: dict[tuple[str, str], tuple[str, int]]  # (kind, key) → (file digest, line)
    legal_by_uscc: dict[str, tuple[int, str]]  # uscc → (account id, login name)
    names: dict[str, tuple[int | None, str, str]]  # login name key → (id, type, login name)
    verified_phones: set[str]  # phone index of verified natural persons


def _candidate_names(record: parser.Record) -> list[str]:
    if record.kind == "unit":
        return [record.key, "HJ_" + record.key, "HJ-" + record.key]
    return [record.key, record.login_name, "HJ-" + record.key.lstrip("+")]


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _one_of(column, values):
    """``column IN values``; on PostgreSQL ``= ANY(array)``, one parameter however many values
    (a statement with thousands of placeholders costs more to build and parse than to run)."""
    values = list(values)
    if _postgres():
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(sa.String())))
    return column.in_(values)


def _load(source: str, records: list[parser.Record], phone_index: dict[str, str]) -> _Existing:
    keys = {(r.kind, r.key) for r in records}
    found = {}
    for kind in ("unit", "person"):
        wanted = [key for k, key in keys if k == kind]
        if wanted:
            rows = db.session.execute(
                sa.select(LegacyImportRecord.key, LegacyImportRecord.file_digest, LegacyImportRecord.line)
                .where(LegacyImportRecord.source == source, LegacyImportRecord.kind == kind,
                       _one_of(LegacyImportRecord.key, wanted)))
            found.update({(kind, key): (digest, line) for key, digest, line in rows})
    usccs = [r.key for r in records if r.kind == "unit"]
    legal = {}
    if usccs:
        legal = {uscc: (id_, name) for id_, name, uscc in db.session.execute(
            sa.select(Account.id, Account.login_name, Account.uscc)
            .where(Account.account_type == LEGAL, _one_of(Account.uscc, usccs)))}
    name_keys = {login_name_key(name) for r in records for name in _candidate_names(r)}
    names = {key: (id_, type_, name) for id_, type_, name, key in db.session.execute(
        sa.select(Account.id, Account.account_type, Account.login_name, Account.login_name_key)
        .where(_one_of(Account.login_name_key, name_keys)))}
    phones = {phone_index[r.key] for r in records if r.kind == "person"}
    verified = set()
    if phones:
        verified = set(db.session.execute(
            sa.select(Account.phone_index).where(_one_of(Account.phone_index, phones),
                                                 Account.account_type == NATURAL,
                                                 Account.phone_verified.is_(True),  # proven by code
                                                 Account.verification_status.in_(VERIFIED_STATUSES))
        ).scalars())
    return _Existing(found, legal, names, verified)


def _decide_and_write(run_id: int, source: str, digest: str, items: list) -> Summary:
    part = Summary()
    records = [item for item in items if isinstance(item, parser.Record)]
    keyring = services().keyring
    # The keyed hash of each mobile, once (the reserved phone's look-up column).
    phone_index = {m: keyring.index(m, "phone") for m in {r.mobile for r in records if r.mobile}}
    existing = _load(source, records, phone_index)
    now = services().clock.now()
    seen: set[tuple[str, str]] = set()
    accounts: list[dict] = []
    rows: list[dict] = []
    skips: list[dict] = []

    def skip(line, reason, field_name=None):
        part.skip(line, reason, field_name)
        skips.append({"run_id": run_id, "line": line, "reason": reason, "field": field_name})

    def free(name: str) -> bool:
        return login_name_key(name) not in existing.names

    def new_account(record, account_type: str, name: str) -> str:
        key = login_name_key(name)
        unit = account_type == LEGAL
        accounts.append({
            "account_type": account_type, "login_name": name, "login_name_key": key,
            "password_hash": record.password_hash, "password_params": hash_params(record.password_hash),
            "status": ACTIVE,
            "verification_status": UNVERIFIED, "must_change_password": False,  # nosec B105  # a flag
            "name": record.contact_name if record.kind == "unit" else record.name,
            "org_name": record.name if unit else None,
            "uscc": record.key if unit else None,
            "org_region": "domestic" if unit else None,
            "phone": record.mobile, "phone_index": phone_index.get(record.mobile),
            "phone_verified": False, "legacy_source": source, "must_complete_real_name": True,
            "created_at": now, "updated_at": now,
        })
        existing.names[key] = (None, account_type, name)
        return key

    def decided(record, outcome: int, account_key: str | None, account=None, authorisation=False):
        (part.units if record.kind == "unit" else part.persons)[outcome] += 1
        rows.append({"record": record, "outcome": outcome, "account_key": account_key,
                     "account": account, "authorisation": authorisation})

    for item in items:
        if isinstance(item, parser.Skip):
            skip(item.line, item.reason, item.field)
            continue
        record = item
        ident = (record.kind, record.key)
        earlier = existing.records.get(ident)
        if ident in seen or (earlier is not None and earlier[0] == digest and earlier[1] != record.line):
            skip(record.line, "duplicate_key", "uscc" if record.kind == "unit" else "mobile")
            continue
        seen.add(ident)
        if earlier is not None:
            part.unchanged += 1
            continue
        if record.kind == "unit":
            if record.key in existing.legal_by_uscc:
                decided(record, 2, None, existing.legal_by_uscc[record.key])
            elif record.holder == "person":
                name = next((n for n in (record.key, "HJ-" + record.key) if free(n)), None)
                if name is None:
                    skip(record.line, "no_free_login_name", "uscc")
                    continue
                decided(record, 4, new_account(record, NATURAL, name), authorisation=True)
            elif not free(record.key):
                if not free("HJ_" + record.key):
                    skip(record.line, "no_free_login_name", "uscc")
                    continue
                decided(record, 3, new_account(record, LEGAL, "HJ_" + record.key))
            else:
                decided(record, 1, new_account(record, LEGAL, record.key))
        else:
            holder = existing.names.get(login_name_key(record.key))
            if holder is not None and holder[1] == NATURAL:
                decided(record, 2, login_name_key(record.key))
            elif phone_index[record.key] in existing.verified_phones:
                decided(record, 4, None)
            elif not free(record.login_name):
                name = "HJ-" + record.key.lstrip("+")
                if not free(name):
                    skip(record.line, "no_free_login_name", "login_name")
                    continue
                decided(record, 3, new_account(record, NATURAL, name))
            else:
                decided(record, 1, new_account(record, NATURAL, record.login_name))

    made = _insert_accounts(accounts) if accounts else {}
    record_rows = []
    for row in rows:
        record = row["record"]
        account_id, login_name, account_type = None, None, None
        if row["account"] is not None:  # unit (2): the legal account with the USCC
            account_id, login_name = row["account"]
            account_type = LEGAL
        elif row["account_key"] is not None:
            id_, account_type, login_name = existing.names[row["account_key"]]
            account_id = made.get(row["account_key"], id_)
        authorisation = None
        if row["authorisation"]:
            authorisation = _owe_authorisation(account_id, record.key, torch_clients(), source)
        record_rows.append({
            "source": source, "kind": record.kind, "key": record.key, "outcome": row["outcome"],
            "account_id": account_id, "login_name": login_name, "account_type": account_type,
            "run_id": run_id, "file_digest": digest, "line": record.line, "created_at": now,
            "authorisation": authorisation,
        })
    if record_rows:
        _insert_records(record_rows)
    if skips:
        db.session.connection().execute(LegacyImportSkip.__table__.insert(), skips)
    return part


# --- writing a batch ---------------------------------------------------------------------------
# On PostgreSQL one INSERT … SELECT FROM unnest(arrays) per table and batch: a few parameters
# whatever the batch's size, so that neither the driver nor the server parses a statement of
# thousands of placeholders. Elsewhere (SQLite: development, tests) Core's executemany.

_ACCOUNT_COLUMNS = {  # column → PostgreSQL array type
    "sub": "varchar", "account_type": "varchar", "login_name": "varchar", "login_name_key": "varchar",
    "password_hash": "varchar", "status": "varchar", "verification_status": "varchar",  # nosec B105  # SQL types
    "password_params": "varchar",
    "must_change_password": "boolean", "name": "varchar", "org_name": "varchar", "uscc": "varchar",  # nosec B105
    "org_region": "varchar", "phone": "text", "phone_index": "varchar", "phone_verified": "boolean",
    "legacy_source": "varchar", "must_complete_real_name": "boolean", "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
_RECORD_COLUMNS = {
    "source": "varchar", "kind": "varchar", "key": "varchar", "outcome": "int", "account_id": "int",
    "login_name": "varchar", "account_type": "varchar", "run_id": "int", "file_digest": "varchar",
    "line": "int", "created_at": "timestamptz", "authorisation": "json",
}


def _unnest_insert(table: str, columns: dict[str, str], rows: list[dict], returning: str = ""):
    params, selects, arrays = {}, [], []
    for n, (name, kind) in enumerate(columns.items()):
        values = [row[name] for row in rows]
        if kind == "json":  # passed as text, cast back per value
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            selects.append(f"CAST(c{n} AS json)")
            kind = "text"
        else:
            selects.append(f"c{n}")
        params[f"p{n}"] = values
        arrays.append(f"CAST(:p{n} AS {kind}[])")
    arrays = ", ".join(arrays)
    aliases = ", ".join(f"c{n}" for n in range(len(columns)))
    # Table, columns and types are this module's constants; every value is a bound parameter.
    statement = (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(selects)} "  # nosec B608
                 f"FROM unnest({arrays}) AS t({aliases}){returning}")
    return db.session.execute(sa.text(statement), params)


def _insert_accounts(accounts: list[dict]) -> dict[str, int]:
    """Inserts the accounts; returns login name key → id."""
    if not _postgres():
        table = Account.__table__
        return {key: id_ for id_, key in db.session.connection().execute(
            table.insert().returning(table.c.id, table.c.login_name_key), accounts)}
    keyring = services().keyring
    for row in accounts:  # what the column types do on the ORM's way
        row["sub"] = str(uuid.uuid4())
        if row["phone"]:
            row["phone"] = keyring.encrypt(row["phone"], "accounts.phone")
    rows = _unnest_insert("accounts", _ACCOUNT_COLUMNS, accounts, " RETURNING id, login_name_key")
    return {key: id_ for id_, key in rows}


def _insert_records(rows: list[dict]) -> None:
    if not _postgres():
        db.session.connection().execute(LegacyImportRecord.__table__.insert(), rows)
        return
    _unnest_insert("legacy_import_records", _RECORD_COLUMNS, rows)


def _owe_authorisation(person_account_id: int, uscc: str, client_ids: Iterable[str], source: str) -> dict:
    """Unit outcome (4): the person's account holds the unit's authorisation for the Torch
    systems (idp.delegations.service.grant_waiting: granted at once when a verified unit with
    the USCC is here, else waiting on the USCC until that unit registers and is verified;
    recorded as accepted). Called once the batch's accounts are inserted, so the id exists.
    A refusal (the systems not delegable here) is recorded on the row, never stops the import.
    Returns what the import's row records."""
    from idp.delegations.service import DelegationRefused, grant_waiting

    owed = {"uscc": uscc, "client_ids": list(client_ids), "source": source}
    try:
        delegation = grant_waiting(db.session.get(Account, person_account_id), uscc, list(client_ids),
                                   f"legacy_{source}")
    except DelegationRefused as refused:
        return {**owed, "state": "refused", "reason": refused.reason}
    return {**owed, "state": "waiting" if delegation.unit_id is None else "granted",
            "delegation_id": delegation.id}


# --- reading what the import did (the lookup page, the console) -------------------------------


@dataclass(frozen=True)
class LookupAnswer:
    """What /account-lookup says: ``case`` names the seed's case; ``login_name`` is the only
    personal datum it may show. Cases: units ``unit_new`` (no account here: register),
    ``unit_existing`` (an account here, not from Torch: log in and verify), ``unit_1``…
    ``unit_4``; persons ``person_new`` (register), ``person_1``…``person_4``."""

    case: str
    login_name: str | None = None
    account_type: str | None = None


def _record_for(kind: str, key: str) -> LegacyImportRecord | None:
    # The Torch's own record first: the lookup is the Torch Center's; then the other systems'.
    rows = db.session.execute(
        sa.select(LegacyImportRecord).where(LegacyImportRecord.kind == kind, LegacyImportRecord.key == key)
    ).scalars().all()
    rows.sort(key=lambda r: (r.source != "torch", r.id))
    return rows[0] if rows else None


def lookup_unit(uscc: str) -> LookupAnswer:
    record = _record_for("unit", uscc)
    if record is not None:
        return LookupAnswer(f"unit_{record.outcome}", record.login_name, record.account_type)
    has_account = db.session.execute(
        sa.select(Account.id).where(Account.account_type == LEGAL, Account.uscc == uscc)).first()
    return LookupAnswer("unit_existing" if has_account else "unit_new")


def lookup_person(mobile: str) -> LookupAnswer:
    record = _record_for("person", mobile)
    if record is None:
        return LookupAnswer("person_new")
    if record.outcome == 4:
        return LookupAnswer("person_4")
    return LookupAnswer(f"person_{record.outcome}", record.login_name, record.account_type)


# --- completing the real-name data (the required action) ----------------------------------------


def real_name_completed(account: Account) -> None:
    """The imported account has completed its real-name data: the required action is done."""
    account.must_complete_real_name = False
    db.session.flush()


# --- the staff console's views of the import ------------------------------------------------

PER_PAGE = 50


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _paged(query, page: int) -> Page:
    total = db.session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    page = max(1, page)
    items = db.session.execute(query.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).all()
    return Page(items, total, page)


def runs(page: int = 1) -> Page:
    return _paged(sa.select(LegacyImportRun).order_by(LegacyImportRun.id.desc()), page)


def run_skips(run_id: int, page: int = 1) -> Page:
    return _paged(sa.select(LegacyImportSkip).where(LegacyImportSkip.run_id == run_id)
                  .order_by(LegacyImportSkip.line), page)


def imported(kind: str | None = None, outcome: int | None = None, source: str | None = None,
             login_name: str | None = None, page: int = 1) -> Page:
    """The import's records with their accounts, newest first, filtered by kind, outcome,
    source and the beginning of the login name."""
    query = (sa.select(LegacyImportRecord, Account)
             .outerjoin(Account, Account.id == LegacyImportRecord.account_id)
             .order_by(LegacyImportRecord.id.desc()))
    if kind:
        query = query.where(LegacyImportRecord.kind == kind)
    if outcome:
        query = query.where(LegacyImportRecord.outcome == outcome)
    if source:
        query = query.where(LegacyImportRecord.source == source)
    if login_name:
        query = query.where(like.starts_with(Account.login_name_key, login_name_key(login_name)))
    return _paged(query, page)
