"""The Simplified Chinese catalogue: complete, faithful to its placeholders, and current.

Simplified Chinese is the default UI language, so a msgid without a zh_CN translation is an
English string on the Chinese page. These tests read the committed catalogue files; the
currency test re-runs the extraction so that a string added to ``idp/**.py`` or a template
without updating the catalogue fails here, with the command that fixes it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "themes" / "default" / "translations"
POT = TRANSLATIONS / "messages.pot"
PO = TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"

UPDATE_COMMAND = (
    f"cd {ROOT} && .venv/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location "
    "--sort-output -o themes/default/translations/messages.pot . && .venv/bin/pybabel update "
    "-i themes/default/translations/messages.pot -d themes/default/translations -l zh_Hans_CN "
    "--no-fuzzy-matching"
)
COMPILE_COMMAND = f"cd {ROOT} && .venv/bin/pybabel compile -d themes/default/translations -D messages"
HOW_TO_FIX = (
    f"\nUpdate the catalogue with:\n  {UPDATE_COMMAND}\n"
    "then translate the new entries in themes/default/translations/zh_Hans_CN/LC_MESSAGES/messages.po "
    f"and compile with:\n  {COMPILE_COMMAND}"
)

LOCKED_MSGID = "Too many wrong passwords: this account is locked until %(until)s."

# %(name)s, %(name)d, %(name)r … – the named placeholders Flask-Babel fills in.
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _read(path: Path, **kwargs):
    with path.open("rb") as f:
        return read_po(f, **kwargs)


def _messages(catalog):
    return {m.id: m for m in catalog if m.id}


def _singular(msgid) -> str:
    return msgid[0] if isinstance(msgid, tuple) else msgid


def _strings(value) -> list[str]:
    if isinstance(value, (tuple, list)):
        return list(value)
    return [value]


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def template():
    return _messages(_read(POT))


@pytest.fixture(scope="module")
def zh_cn():
    return _read(PO, locale="zh_Hans_CN")


def _extract(destination: Path) -> None:
    """The documented extraction command, run in-process into ``destination``."""
    CommandLineInterface().run([
        "pybabel", "-q", "extract",
        "-F", str(ROOT / "babel.cfg"),
        "-k", "_l", "-k", "lazy_gettext",
        "--no-location", "--sort-output",
        "-o", str(destination),
        str(ROOT),
    ])


def test_every_template_msgid_has_a_non_empty_non_fuzzy_zh_cn_translation(template, zh_cn):
    translations = _messages(zh_cn)
    missing = sorted(_singular(i) for i in template if i not in translations)
    empty = sorted(
        _singular(i) for i, m in translations.items()
        if i in template and not all(s and s.strip() for s in _strings(m.string))
    )
    fuzzy = sorted(_singular(i) for i, m in translations.items() if i in template and m.fuzzy)
    problems = (
        [f"not in messages.po: {i!r}" for i in missing]
        + [f"empty translation: {i!r}" for i in empty]
        + [f"fuzzy translation: {i!r}" for i in fuzzy]
    )
    assert not problems, (
        "zh_CN catalogue is incomplete:\n  " + "\n  ".join(problems)
        + HOW_TO_FIX
    )


def test_the_zh_cn_catalogue_is_not_marked_fuzzy_and_names_its_language(zh_cn):
    assert not zh_cn.fuzzy, "the header of messages.po is marked fuzzy; the compiler would skip it"
    assert zh_cn.locale_identifier == "zh_Hans_CN"
    header = "\n".join(f"{k}: {v}" for k, v in zh_cn.mime_headers)
    assert "EMAIL@ADDRESS" not in header and "FULL NAME" not in header, header


def test_every_placeholder_of_a_msgid_appears_in_its_translation(template, zh_cn):
    translations = _messages(zh_cn)
    problems = []
    for msgid in template:
        message = translations.get(msgid)
        if message is None:
            continue  # reported by the completeness test
        expected = set().union(*(_placeholders(s) for s in _strings(msgid)))
        for translated in _strings(message.string):
            found = _placeholders(translated or "")
            if expected - found:
                problems.append(f"{_singular(msgid)!r} → {translated!r}: missing {sorted(expected - found)}")
            if found - expected:
                problems.append(f"{_singular(msgid)!r} → {translated!r}: unknown {sorted(found - expected)}")
    assert not problems, "placeholders differ between msgid and translation:\n  " + "\n  ".join(problems)


def test_the_committed_template_lists_exactly_the_msgids_of_the_source(tmp_path, template):
    fresh_path = tmp_path / "messages.pot"
    _extract(fresh_path)
    fresh = _messages(_read(fresh_path))
    not_in_template = sorted(_singular(i) for i in set(fresh) - set(template))
    no_longer_used = sorted(_singular(i) for i in set(template) - set(fresh))
    lines = (
        [f"in the source but not in messages.pot: {i!r}" for i in not_in_template]
        + [f"in messages.pot but no longer in the source: {i!r}" for i in no_longer_used]
    )
    assert not lines, (
        "themes/default/translations/messages.pot is out of date:\n  " + "\n  ".join(lines)
        + HOW_TO_FIX
    )


def test_the_locked_account_message_says_the_account_is_locked_in_chinese(template, zh_cn):
    assert LOCKED_MSGID in template, f"{LOCKED_MSGID!r} is no longer in messages.pot"
    translation = _messages(zh_cn)[LOCKED_MSGID].string
    assert "锁定" in translation, translation
    assert "%(until)s" in translation, translation


def test_flask_babel_loads_the_chinese_catalogue_for_the_zh_cn_setting():
    """Babel reads zh_CN as zh_Hans_CN, which is why the catalogue lives under zh_Hans_CN/."""
    from flask import Flask
    from flask_babel import Babel, gettext

    app = Flask(__name__)
    app.config.update(BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS), BABEL_DEFAULT_LOCALE="zh_CN")
    Babel(app, locale_selector=lambda: "zh_CN")
    with app.test_request_context("/"):
        assert gettext("Unified user login") == "统一用户登录"
