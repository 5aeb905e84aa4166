"""The UI language: ``?lang=``, then OIDC ``ui_locales``, then the remembered choice, then the
configured default (zh_CN). Babel names zh_CN's catalogue zh_Hans_CN."""

from __future__ import annotations

from flask import current_app, request

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
