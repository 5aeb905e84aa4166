"""Hypothesis properties of the legacy export parser (idp.legacy.parser), as
test_parser_properties.py has them for the other parsers of outsiders' input: whatever the
bytes, it yields records and skips with a known reason and a line number, never raises; the
records written as CSV (with or without BOM, LF or CRLF, quoted fields) or as JSON Lines come
back as they were, at their lines; a bad line never stops the rest."""

from __future__ import annotations

import csv
import io
import json
import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from idp.legacy import parser
from idp.security.identifiers import uscc_check_char
from idp.security.passwords import UnsupportedHash, legacy_hash_format

SETTINGS = settings(max_examples=60, deadline=None)
HASH_REASONS = {"hash_missing", "hash_too_long", "hash_format_unknown", "bcrypt_malformed",
                "bcrypt_cost_too_high", "pbkdf2_malformed", "pbkdf2_iterations_too_high",
                "sha256_malformed", "argon2_malformed", "argon2_cost_too_high"}
REASONS = set(parser.reasons()) | HASH_REASONS

SHA = "sha256$a9f3c1$" + "ab" * 32
BCRYPT = "$2b$04$" + "a" * 53
PBKDF2 = "pbkdf2_sha256$1000$Q8mVx3kLp0Zt$" + "A" * 43 + "="


def _stream(data: bytes):
    return io.BufferedReader(io.BytesIO(data))


def _read(data: bytes):
    return list(parser.records(_stream(data)))


# Names: any printable text, commas, quotes, Chinese; no control characters, no formula start.
NAME = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs", "S")),
               min_size=1, max_size=30).map(str.strip).filter(
    lambda s: s and not s.startswith(parser.FORMULA_STARTS))
LOGIN = st.from_regex(r"[A-Za-z][A-Za-z0-9_.@]{3,20}", fullmatch=True)


@st.composite
def unit_rows(draw):
    first17 = f"91{draw(st.integers(110000, 659999))}{draw(st.integers(0, 10**9 - 1)):09d}"
    code = first17 + uscc_check_char(first17)
    return {"kind": "unit", "login_name": code, "password_hash": draw(st.sampled_from([SHA, BCRYPT, PBKDF2])),
            "name": draw(NAME), "uscc": code, "mobile": draw(st.sampled_from(["", "13800138000"])),
            "contact_name": draw(NAME), "holder": draw(st.sampled_from(["unit", "person"]))}


@st.composite
def person_rows(draw):
    return {"kind": "person", "login_name": draw(LOGIN), "password_hash": draw(st.sampled_from([SHA, BCRYPT])),
            "name": draw(NAME), "uscc": "", "mobile": f"1{draw(st.integers(3, 9))}{draw(st.integers(0, 10**9 - 1)):09d}",
            "contact_name": "", "holder": ""}


ROWS = st.lists(st.one_of(unit_rows(), person_rows()), max_size=12)


def _csv(rows, newline="\n", bom=False) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=parser.FIELDS, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def _expected(row) -> tuple:
    # The parser keeps text as NFC (one spelling of each character), stripped.
    return (row["kind"], row["uscc"] if row["kind"] == "unit" else row["mobile"],
            unicodedata.normalize("NFC", row["name"]).strip())


@SETTINGS
@given(data=st.binary(max_size=600))
@example(data=b"kind,login_name\n\xff\xfe\n")
@example(data=b'{"kind": "unit"}\n{')
@example(data=b"\xef\xbb\xbf")
@example(data=b'kind,name\nperson,"unclosed\n')
@example(data=b"kind\x00,x\nperson\x00\n")
def test_any_bytes_give_records_and_skips_with_known_reasons_and_never_raise(data):
    physical_lines = data.count(b"\n") + 1
    last = 0
    for item in _read(data):
        assert isinstance(item, (parser.Record, parser.Skip))
        assert 1 <= item.line <= physical_lines
        assert item.line >= last
        last = item.line
        if isinstance(item, parser.Skip):
            assert item.reason in REASONS, item
        else:
            assert item.kind in ("unit", "person") and item.key
            for text in (item.name, item.contact_name or "", item.login_name):
                assert not text.startswith(parser.FORMULA_STARTS)  # (a leading tab is stripped)
            legacy_hash_format(item.password_hash)  # a record's hash is one the login verifies


@SETTINGS
@given(rows=ROWS, newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_records_written_as_csv_come_back_as_they_were_at_their_lines(rows, newline, bom):
    items = _read(_csv(rows, newline, bom))

    assert all(isinstance(item, parser.Record) for item in items), items
    assert [(i.kind, i.key, i.name) for i in items] == [_expected(r) for r in rows]
    assert [i.line for i in items] == list(range(2, len(rows) + 2))


@SETTINGS
@given(rows=ROWS)
def test_records_written_as_json_lines_come_back_as_they_were_at_their_lines(rows):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    items = _read(data)

    assert [(i.kind, i.key, i.name) for i in items] == [_expected(r) for r in rows]
    assert [i.line for i in items] == list(range(1, len(rows) + 1))


GARBAGE = st.one_of(
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b'"' not in b and b"\r" not in b),
    st.sampled_from([b"\xff\xfe\xfd", b"person,,,,,,,", b"unit,x,y", b"=cmd|' /C calc'!A0", b"a,b,c,d,e,f,g,h,i,j"]),
)


@SETTINGS
@given(rows=ROWS.filter(bool), garbage=GARBAGE, position=st.integers(0, 12))
def test_a_bad_line_among_good_ones_stops_nothing(rows, garbage, position):
    lines = _csv(rows).splitlines(keepends=True)
    at = 1 + min(position, len(rows))
    data = b"".join(lines[:at]) + garbage + b"\n" + b"".join(lines[at:])

    items = _read(data)

    records = [i for i in items if isinstance(i, parser.Record)]
    skips = [i for i in items if isinstance(i, parser.Skip)]
    good = [(i.kind, i.key, i.name) for i in records if i.line != at + 1]
    assert good == [_expected(r) for r in rows]
    assert all(s.line == at + 1 for s in skips)
    # The good records keep their own line numbers: one more after the inserted line.
    assert [i.line for i in records if i.line != at + 1] == [n + 2 + (n + 2 > at) for n in range(len(rows))]


@SETTINGS
@given(row=st.one_of(unit_rows(), person_rows()),
       start=st.sampled_from([c for c in parser.FORMULA_STARTS if c not in "\t\r"]),
       field=st.sampled_from(["name", "contact_name", "login_name"]))
def test_a_name_a_spreadsheet_would_run_as_a_formula_is_refused(row, start, field):
    if row["kind"] == "person" and field == "contact_name":
        field = "name"
    row = {**row, field: start + "SUM(A1)"}
    [item] = _read(_csv([row]))

    assert item == parser.Skip(2, "csv_injection", field)


def test_a_quoted_name_spanning_lines_is_skipped_at_its_first_line_and_the_next_record_keeps_its_line():
    good = {"kind": "person", "login_name": "torch_ok", "password_hash": SHA, "name": "好", "mobile": "13800138000"}
    bad = {**good, "login_name": "torch_nl", "name": "两\n行", "mobile": "13800138001"}
    items = _read(_csv([bad, good]))

    assert items[0] == parser.Skip(2, "control_characters", "name")
    assert isinstance(items[1], parser.Record) and items[1].line == 4


def test_each_hash_reason_is_one_the_parser_may_give():
    for text in ("", "x" * 300, "md5$x", "$2b$99$" + "a" * 53):
        try:
            legacy_hash_format(text)
        except UnsupportedHash as refused:
            assert refused.reason in HASH_REASONS
