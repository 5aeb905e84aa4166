"""Searching a text column for what someone typed, literally.

What staff type into a search box is text, never a pattern: ``%``, ``_`` and the escape
character itself must match only themselves, on SQLite and PostgreSQL alike. The escape
character is written out in each ``LIKE … ESCAPE`` clause rather than left to the database's
default (PostgreSQL has ``\\`` by default, SQLite has none), and the typed text always reaches
the database as a bound parameter.
"""

from __future__ import annotations

from typing import Any

ESCAPE = "\\"


def literal(text: str) -> str:
    """``text`` as a LIKE pattern that matches exactly ``text`` (escape character ``ESCAPE``)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def contains(column: Any, text: str) -> Any:
    """``column`` contains ``text``, ignoring case."""
    return column.ilike(f"%{literal(text)}%", escape=ESCAPE)


def starts_with(column: Any, text: str) -> Any:
    """``column`` starts with ``text``, case as given (for keys that are already folded)."""
    return column.like(f"{literal(text)}%", escape=ESCAPE)
