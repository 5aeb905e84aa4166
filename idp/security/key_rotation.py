"""Rotation of the personal-data encryption key.

1. A new key is created, made active and saved into the keyring file before any row changes,
   so an interrupted rotation leaves every row readable (old rows still decrypt with the old
   key) and can simply be run again.
2. Running servers notice the changed file within ``Keyring.reload_interval`` (about a
   second) and encrypt with the new key from then on. When old keys are to be retired the
   rotation first waits that long, so that no server is still writing with an old key.
3. Every encrypted column of every table (personal data, and the other secrets kept with the
   same keyring such as signing keys) is re-encrypted where it still names an older key.
4. ``retire_old=True`` then checks every encrypted column again and refuses to drop the old
   keys while any value still names one (a server that could not see the new keyring file,
   a transaction that began before the rotation, a value that no longer decrypts): dropping
   them would make those values unreadable for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click
import sqlalchemy as sa
from flask import current_app

from idp import signals
from idp.extensions import db, services
from idp.models.types import Encrypted
from idp.security.pii import Keyring, KeyringError

BATCH = 500


class KeyRetirementRefused(click.ClickException):
    """Old keys are still in use; ``remaining`` counts the values by ``table.column``.

    A ``ClickException`` so that ``idp pii rotate-key --retire-old`` prints the message (not a
    traceback) and exits with status 1; the rotation itself has happened, only the
    retirement is refused.
    """

    def __init__(self, remaining: dict[str, int]) -> None:
        self.remaining = remaining
        where = ", ".join(f"{column}: {count}" for column, count in sorted(remaining.items()))
        super().__init__(
            "old keys not retired: values encrypted with them remain after re-encryption "
            f"({where}); make sure every server reads the same keyring file (restart them or "
            "wait a second), then run the rotation again"
        )


def encrypted_columns() -> list[tuple[sa.Table, list[sa.Column]]]:
    """Every table of the schema with its encrypted columns (tables not created yet skipped)."""
    inspector = sa.inspect(db.engine)
    found = []
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, Encrypted)]
        if columns and inspector.has_table(table.name):
            found.append((table, columns))
    return found


def _raw(column: sa.Column):
    """The stored ciphertext, without the Encrypted type's decryption."""
    return sa.type_coerce(column, sa.Text()).label(column.name)


def _stale(value: str | None, active: str) -> bool:
    return value is not None and not value.startswith(f"v1.{active}.")


def reencrypt(keyring: Keyring) -> tuple[dict[str, int], dict[str, int]]:
    """Re-encrypt every value not under the active key.

    Returns (rows rewritten per table, values that would not decrypt per ``table.column``);
    a value that does not decrypt is left as it is and reported, never overwritten.
    """
    rewritten: dict[str, int] = {}
    undecryptable: dict[str, int] = {}
    for table, columns in encrypted_columns():
        key_columns = list(table.primary_key.columns)
        last = None
        while True:
            query = sa.select(*key_columns, *[_raw(c) for c in columns]).order_by(*key_columns).limit(BATCH)
            if last is not None:
                query = query.where(sa.tuple_(*key_columns) > sa.tuple_(*last)) if len(key_columns) > 1 \
                    else query.where(key_columns[0] > last[0])
            batch = db.session.execute(query).all()
            if not batch:
                break
            for row in batch:
                last = tuple(row[:len(key_columns)])
                values = {}
                for column in columns:
                    stored = row._mapping[column.name]
                    if not _stale(stored, keyring.active):
                        continue
                    try:
                        values[column.name] = keyring.decrypt(stored, column.type.context)
                    except KeyringError:
                        name = f"{table.name}.{column.name}"
                        undecryptable[name] = undecryptable.get(name, 0) + 1
                if values:
                    where = sa.and_(*[c == v for c, v in zip(key_columns, last)])
                    # A Core update of the changed columns; the clear text is encrypted again by
                    # the column type, under the active key.
                    db.session.execute(sa.update(table).where(where).values(values))
                    rewritten[table.name] = rewritten.get(table.name, 0) + 1
            db.session.commit()
    return rewritten, undecryptable


def stale_values(keyring: Keyring) -> dict[str, int]:
    """Values per ``table.column`` that still name a key other than the active one."""
    remaining: dict[str, int] = {}
    for table, columns in encrypted_columns():
        for column in columns:
            raw = sa.type_coerce(column, sa.Text())
            count = db.session.execute(
                sa.select(sa.func.count()).select_from(table).where(
                    column.isnot(None), sa.not_(raw.startswith(f"v1.{keyring.active}."))
                )
            ).scalar_one()
            if count:
                remaining[f"{table.name}.{column.name}"] = count
    return remaining


def retire_old_keys(keyring: Keyring) -> list[str]:
    """Drop every key but the active one, unless some value still needs one of them."""
    remaining = stale_values(keyring)
    if remaining:
        raise KeyRetirementRefused(remaining)
    retired = keyring.retire_inactive()
    if retired:
        keyring.save()
    return retired


def _wait_for_servers(saved_at: float, keyring: Keyring) -> None:
    """Let every running server notice the new keyring file before rows are rewritten."""
    left = saved_at + keyring.reload_interval + 0.5 - time.monotonic()
    if left > 0:
        time.sleep(left)


def rotate_pii_key(retire_old: bool = False,
                   settle: Callable[[float, Keyring], None] = _wait_for_servers) -> dict:
    """``idp pii rotate-key [--retire-old]``: the steps of the module docstring.

    ``settle(saved_at, keyring)`` is the pause for running servers before the rows are
    rewritten (only when retiring); raises KeyRetirementRefused when old keys remain in use.
    """
    keyring = services().keyring
    keyring.refresh(force=True)  # start from the file as it is now
    new_kid = keyring.add_key()
    keyring.save()
    if retire_old:
        settle(time.monotonic(), keyring)
    rewritten, undecryptable = reencrypt(keyring)
    rows = sum(rewritten.values())
    for column, count in sorted(undecryptable.items()):
        current_app.logger.warning("%d value(s) in %s do not decrypt; left as they are", count, column)
    result = {"active": new_kid, "rows": rows, "tables": rewritten, "undecryptable": undecryptable,
              "retired": []}
    app = current_app._get_current_object()
    try:
        if retire_old:
            result["retired"] = retire_old_keys(keyring)
    except KeyRetirementRefused as refused:
        signals.pii_key_rotated.send(
            app, subject="pii_keyring", actor="cli", outcome="refused",
            details={"active": new_kid, "rows": rows, "retired": [], "remaining": refused.remaining},
        )
        raise
    signals.pii_key_rotated.send(
        app, subject="pii_keyring", actor="cli",
        details={"active": new_kid, "rows": rows, "retired": result["retired"]},
    )
    return result
