"""Typed search text matches literally: ``%``, ``_`` and ``\\`` are characters, not wildcards,
on the configured database (SQLite by default, PostgreSQL with ``IDP_TEST_DATABASE_URL``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idp.extensions import db
from idp.models import like

NAMES = ["100% 合格", "1000 合格", "a_b", "axb", "back\\slash", "back/slash", "backslash", "Mixed Case"]


@pytest.fixture
def names(app):
    table = sa.table("like_probe", sa.column("name", sa.String))
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS like_probe"))
        conn.execute(sa.text("CREATE TABLE like_probe (name VARCHAR(40))"))
        conn.execute(table.insert(), [{"name": n} for n in NAMES])
    yield table
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE like_probe"))


def found(table, condition) -> list[str]:
    with db.engine.connect() as conn:
        return sorted(conn.execute(sa.select(table.c.name).where(condition)).scalars())


@pytest.mark.parametrize("typed, expected", [
    ("0%", ["100% 合格"]),
    ("a_b", ["a_b"]),
    ("_", ["a_b"]),
    ("%", ["100% 合格"]),
    ("\\", ["back\\slash"]),
    ("k\\s", ["back\\slash"]),
    ("\\%", []),
    ("mixed c", ["Mixed Case"]),
])
def test_a_wildcard_typed_into_a_search_matches_only_itself(names, typed, expected):
    assert found(names, like.contains(names.c.name, typed)) == expected


@pytest.mark.parametrize("typed, expected", [
    ("10", ["100% 合格", "1000 合格"]),
    ("100%", ["100% 合格"]),
    ("a_", ["a_b"]),
    ("back\\", ["back\\slash"]),
    ("%", []),
    ("_", []),
])
def test_a_prefix_search_treats_wildcards_as_characters(names, typed, expected):
    assert found(names, like.starts_with(names.c.name, typed)) == expected


def test_the_literal_pattern_escapes_the_escape_character_first():
    assert like.literal("\\%_") == "\\\\\\%\\_"
