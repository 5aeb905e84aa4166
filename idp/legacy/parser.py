"""Reading a legacy export (INTERFACES.md "Legacy export format") as a stream of checked records.

The file is read line by line from a binary handle, so memory stays flat whatever its size.
Each physical line is decoded on its own: a line that is not UTF-8 spoils only the record it
belongs to. CSV (header row, optional BOM; a quoted field may span lines) or JSON Lines, told
apart by the first character after the BOM (``{`` is JSON Lines).

``records(handle)`` yields ``Record`` (a valid record, with the line it starts on) or ``Skip``
(the line and a stable reason code); it never raises for a bad record. Reasons:

``invalid_utf8``, ``malformed_record`` (a broken CSV row or JSON line, or a CSV row with more
fields than the header), ``unknown_kind``, ``missing_field`` (``field`` names it),
``field_too_long``, ``control_characters``, ``csv_injection`` (a name, contact or login name
that a spreadsheet would run as a formula), ``invalid_uscc`` (format or check character,
GB 32100), ``invalid_mobile``, ``invalid_holder``, ``invalid_login_name``, and the password
hash reasons of ``idp.security.passwords.legacy_hash_format`` (``hash_format_unknown`` …).
Duplicate keys are told by the import (idp.legacy.service), which sees across batches.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from idp.accounts.names import is_valid_login_name, normalise_login_name
from idp.security import identifiers
from idp.security.passwords import UnsupportedHash, legacy_hash_format

FIELDS = ("kind", "login_name", "password_hash", "name", "uscc", "mobile", "contact_name", "holder")
REQUIRED = {
    "unit": ("password_hash", "name", "uscc", "holder"),
    "person": ("login_name", "password_hash", "name", "mobile"),
}
MAX_LENGTH = {"login_name": 64, "password_hash": 255, "name": 200, "uscc": 40, "mobile": 32,  # nosec B105  # lengths
              "contact_name": 100, "holder": 10, "kind": 10}
# A cell starting with one of these is run as a formula by spreadsheet programs (OWASP "CSV
# injection"); the console's exports and operators' spreadsheets would carry it on.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
NAME_FIELDS = ("name", "contact_name", "login_name")
MAX_LINE_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc  # a longer physical line is no account record


@dataclass(frozen=True)
class Record:
    line: int
    kind: str  # unit | person
    key: str  # USCC (units) or normalised mobile (persons)
    login_name: str  # units: the USCC; persons: the Torch login name (normalised)
    password_hash: str
    name: str
    mobile: str | None
    contact_name: str | None
    holder: str | None  # units: unit | person


@dataclass(frozen=True)
class Skip:
    line: int
    reason: str
    field: str | None = None


class _Lines:
    """Decoded physical lines with their numbers; remembers which ones were not UTF-8."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self.number = 0
        self.bad: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        first = True
        for raw in self._handle:
            self.number += 1
            if first:
                first = False
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
            if len(raw) > MAX_LINE_BYTES:
                self.bad.add(self.number)
                raw = b"\n"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.bad.add(self.number)
                text = raw.decode("utf-8", "replace")
            yield text


def _first_char(handle) -> str:
    """The first non-space character of the file (after a BOM), without consuming it."""
    head = handle.peek(4096)[:4096] if hasattr(handle, "peek") else b""
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    stripped = head.lstrip()
    return chr(stripped[0]) if stripped else ""


def records(handle) -> Iterator[Record | Skip]:
    """The records of a binary handle (opened with buffering, so that it can ``peek``)."""
    if _first_char(handle) == "{":
        yield from _json_lines(handle)
    else:
        yield from _csv_rows(handle)


def _csv_rows(handle) -> Iterator[Record | Skip]:
    lines = _Lines(handle)
    reader = csv.reader(iter(lines), strict=True)
    header: list[str] | None = None
    while True:
        start = lines.number + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield Skip(start, "malformed_record")
            continue
        if lines.bad.intersection(range(start, lines.number + 1)):
            yield Skip(start, "invalid_utf8")
            if header is None:
                return  # no header: nothing can be read
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line is no record
        if len(row) > len(header):
            yield Skip(start, "malformed_record")
            continue
        yield check(start, dict(zip(header, row)))


def _json_lines(handle) -> Iterator[Record | Skip]:
    lines = _Lines(handle)
    for text in lines:
        number = lines.number
        if number in lines.bad:
            yield Skip(number, "invalid_utf8")
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError:
            yield Skip(number, "malformed_record")
            continue
        if not isinstance(data, dict) or any(
                value is not None and not isinstance(value, str) for value in data.values()):
            yield Skip(number, "malformed_record")
            continue
        yield check(number, data)


def _clean(value: object) -> str:
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else ""


def check(line: int, raw: dict) -> Record | Skip:
    """One record's fields, checked; a ``Skip`` names the first problem."""
    data = {name: _clean(raw.get(name)) for name in FIELDS}
    kind = data["kind"].lower()
    if not kind:
        return Skip(line, "missing_field", "kind")
    if kind not in REQUIRED:
        return Skip(line, "unknown_kind", "kind")
    for name in REQUIRED[kind]:
        if not data[name]:
            return Skip(line, "missing_field", name)
    for name, value in data.items():
        if len(value) > MAX_LENGTH[name]:
            return Skip(line, "field_too_long", name)
        if _CONTROL.search(value):
            return Skip(line, "control_characters", name)
    for name in NAME_FIELDS:
        if data[name].startswith(FORMULA_STARTS):
            return Skip(line, "csv_injection", name)
    try:
        legacy_hash_format(data["password_hash"])
    except UnsupportedHash as refused:
        return Skip(line, refused.reason, "password_hash")
    mobile = None
    if data["mobile"]:
        mobile = identifiers.normalise_mobile(data["mobile"])
        if mobile is None:
            return Skip(line, "invalid_mobile", "mobile")
    if kind == "unit":
        uscc = data["uscc"].upper()
        if not identifiers.is_valid_uscc(uscc):
            return Skip(line, "invalid_uscc", "uscc")
        holder = data["holder"].lower()
        if holder not in ("unit", "person"):
            return Skip(line, "invalid_holder", "holder")
        return Record(line, "unit", uscc, uscc, data["password_hash"], data["name"], mobile,
                      data["contact_name"] or None, holder)
    login_name = normalise_login_name(data["login_name"])
    if not is_valid_login_name(login_name):
        return Skip(line, "invalid_login_name", "login_name")
    return Record(line, "person", mobile, login_name, data["password_hash"], data["name"], mobile,
                  None, None)


def reasons() -> Iterable[str]:
    """Every reason code this module gives (the console and the docs list them)."""
    return ("invalid_utf8", "malformed_record", "unknown_kind", "missing_field", "field_too_long",
            "control_characters", "csv_injection", "invalid_uscc", "invalid_mobile", "invalid_holder",
            "invalid_login_name")
