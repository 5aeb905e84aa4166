"""Rotation of the personal-data encryption key.

The new key is saved into the keyring before any row changes, so an interrupted rotation
leaves every row readable (old rows still decrypt with the old key) and can simply be run
again.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy.orm.attributes import flag_modified

from idp import signals
from idp.extensions import db, services
from idp.models.accounts import PERSONAL_FIELDS, Account

BATCH = 500


def rotate_pii_key(retire_old: bool = False) -> dict:
    keyring = services().keyring
    new_kid = keyring.add_key()
    keyring.save()
    rows = 0
    last_id = 0
    while True:
        batch = db.session.execute(
            db.select(Account).where(Account.id > last_id).order_by(Account.id).limit(BATCH)
        ).scalars().all()
        if not batch:
            break
        for account in batch:
            for field in PERSONAL_FIELDS:
                if getattr(account, field) is not None:
                    flag_modified(account, field)
            rows += 1
            last_id = account.id
        db.session.commit()
    retired = keyring.retire_inactive() if retire_old else []
    if retired:
        keyring.save()
    signals.pii_key_rotated.send(
        current_app._get_current_object(), subject="pii_keyring", actor="cli",
        details={"active": new_kid, "rows": rows, "retired": retired},
    )
    return {"active": new_kid, "rows": rows, "retired": retired}
