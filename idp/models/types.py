"""Column types shared by the models."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Encrypted(TypeDecorator):
    """Personal data: AES-GCM ciphertext in the database, clear text in Python.

    ``context`` (table.column) is the associated data, so a ciphertext copied into another
    column fails to decrypt.
    """

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value, dialect):
        if value is None or value == "":
            return None
        return _keyring().encrypt(str(value), self.context)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return _keyring().decrypt(value, self.context)


def _keyring():
    from idp.extensions import services

    return services().keyring


def utcnow() -> datetime:
    from idp.extensions import services

    return services().clock.now()
