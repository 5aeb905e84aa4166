"""The UI language: ``?lang=``, then OIDC ``ui_locales``, then the remembered choice, then the
configured default (zh_CN). Babel names zh_CN's catalogue zh_Hans_CN."""

from __future__ import annotations

from flask import current_app, g, request
from flask_babel import get_translations

LOCALES = ("zh_CN", "en")
LOCALE_COOKIE = "idp_lang"


def ui_locales() -> str | None:
    """OIDC Core §3.1.2.1 ``ui_locales``: the first supported tag wins."""
    for tag in (request.args.get("ui_locales") or "").split():
        if tag.lower().startswith("zh"):
            return "zh_CN"
        if tag.lower().startswith("en"):
            return "en"
    return None


def select_locale() -> str:
    chosen = request.args.get("lang") or ui_locales() or request.cookies.get(LOCALE_COOKIE)
    if chosen in LOCALES:
        return chosen
    return current_app.config["DEFAULT_LOCALE"]


def request_translations():
    """This request's catalogue, looked up once. Flask-Babel looks it up again for every
    string, through several context look-ups, and the login page has dozens of strings: that
    was a tenth of the page's CPU (bench/PROFILE.md)."""
    found = g.get("_idp_translations")
    if found is None:
        found = g._idp_translations = get_translations()
    return found


def install_template_gettext(app) -> None:
    """The templates' ``_``/``gettext`` family, on ``request_translations`` (after Babel's own)."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
